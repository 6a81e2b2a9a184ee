#!/usr/bin/env bash
# A throwaway PostgreSQL cluster in its own folder and port (never the system service), for the tests.
#
#   eval "$(bash Tests/support/postgres.sh start /tmp/sluice-pg 55432)"   # exports SLUICE_TEST_POSTGRES
#   bash Tests/support/postgres.sh stop /tmp/sluice-pg
#
# The cluster has one role, `sluice`, with a random password (scram-sha-256 over TCP on 127.0.0.1:
# the tests exercise real password authentication), which may create databases (each store test
# makes its own). Needs Debian's `postgresql` package (initdb, pg_ctl). As root it runs the server as
# the `postgres` user the package creates: PostgreSQL refuses to run as root.
set -euo pipefail
command=${1:?start|stop}
folder=${2:?folder}
port=${3:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z "$bin" ]]; then
    echo "PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
fi
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
start)
    if [[ -f "$folder/data/postmaster.pid" ]]; then as_owner "$bin/pg_ctl" -D "$folder/data" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$folder"
    mkdir -p "$folder"
    [[ $(id -u) -eq 0 ]] && chown postgres "$folder"
    password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
    printf '%s\n' "$password" > "$folder/password"
    [[ $(id -u) -eq 0 ]] && chown postgres "$folder/password"
    as_owner "$bin/initdb" -D "$folder/data" -U sluice --pwfile="$folder/password" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$folder/initdb.log"
    # Small and fast: a throwaway cluster needs no durability across machine crashes, but the
    # tests check what a commit promises, so fsync stays on.
    as_owner "$bin/pg_ctl" -D "$folder/data" -l "$folder/server.log" -w -t 60 \
        -o "-p $port -k $folder -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=64MB" start >/dev/null
    echo "export SLUICE_TEST_POSTGRES='postgres://sluice:$password@127.0.0.1:$port/postgres?sslmode=disable'"
    ;;
stop)
    if [[ -d "$folder/data" ]]; then as_owner "$bin/pg_ctl" -D "$folder/data" -m fast -w stop >/dev/null || true; fi
    ;;
restart)
    as_owner "$bin/pg_ctl" -D "$folder/data" -m fast -w restart -l "$folder/server.log" \
        -o "-p $port -k $folder -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=64MB" >/dev/null
    ;;
*)
    echo "usage: $0 start|stop|restart FOLDER [PORT]" >&2
    exit 2
    ;;
esac
