#!/usr/bin/env bash
# What the store costs per request: admission (a limited group: the limits are read and counted)
# and the ledger row (written before the response ends), on SQLite and on PostgreSQL, through the
# real gateway on loopback, one run each, same load.
#
#   bash Benchmarks/store.sh
#
# Starts its own throwaway PostgreSQL cluster (Tests/support/postgres.sh; Debian's `postgresql`
# package) and the Bedrock simulator. Each run: `sluice serve` on the store, a warm-up, then
# REQUESTS one-chunk streams at CONCURRENCY. Reported per request: the gateway's CPU, the database
# server's CPU (PostgreSQL's processes; SQLite runs inside the gateway), time to first byte, and
# the rate.
#
# Environment (all optional): REQUESTS (default 4000), CONCURRENCY (default 8), PG_PORT (default
# 55439), SKIP_BUILD=1 / SCRATCH / SLUICE_BIN / SLUICE_LOAD_BIN as in common.sh, KEEP=1.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

requests="${REQUESTS:-4000}"
concurrency="${CONCURRENCY:-8}"
pg_port="${PG_PORT:-55439}"

source Benchmarks/common.sh
bench_start store

# Its own folder under /tmp: as root the server runs as `postgres`, which cannot enter $work (0700).
pg_dir="$(mktemp -d /tmp/sluice-store-pg.XXXXXX)"
bench_cleanup_extra() { bash Tests/support/postgres.sh stop "$pg_dir" > /dev/null 2>&1 || true; rm -rf "$pg_dir"; }
eval "$(bash Tests/support/postgres.sh start "$pg_dir" "$pg_port")"
postgres_url="${SLUICE_TEST_POSTGRES/\/postgres\?/\/sluice_bench?}"
psql "$SLUICE_TEST_POSTGRES" -q -c "CREATE DATABASE sluice_bench"

sim_port="$(free_port)"
"${server_env[@]}" "$simulator" simulate --host 127.0.0.1 --port "$sim_port" --log-level warning > "$work/simulator.log" 2>&1 &
pids+=("$!")
wait_up "http://127.0.0.1:$sim_port/inference-profiles"

# CPU ticks (utime + stime) of a process, or of PostgreSQL's postmaster and all its children.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
postgres_ticks() {
    local postmaster total=0 pid
    postmaster="$(head -n 1 "$pg_dir/data/postmaster.pid")"
    total=$(ticks "$postmaster")
    for pid in $(ps -o pid= --ppid "$postmaster"); do
        [[ -r "/proc/$pid/stat" ]] && total=$((total + $(ticks "$pid")))
    done
    echo "$total"
}

for store in sqlite postgres; do
    case "$store" in
        sqlite) db="$work/sluice.db" ;;
        postgres) db="$postgres_url" ;;
    esac
    port="$(free_port)"
    cat > "$work/$store.json" <<JSON
{
  "server": {"host": "127.0.0.1", "port": $port},
  "upstream": {"endpoint": "http://127.0.0.1:$sim_port"},
  "policies": [{"source": "group:bench", "limits": {"requestsPerMinute": 100000000, "tokensPerMinute": 1000000000000,
                "tokensPerDay": 1000000000000, "budgetUSDPerMonth": 1000000000}}],
  "prices": [{"model": "*", "input": 3, "output": 15}]
}
JSON
    token="$("${server_env[@]}" "$sluice" token create --identity bench --group bench --ttl 1d --db "$db" | tail -n 1)"
    "${server_env[@]}" SLUICE_DB="$db" "$sluice" serve --config "$work/$store.json" --log-level warning > "$work/$store.log" 2>&1 &
    gateway=$!
    pids+=("$gateway")
    wait_up "http://127.0.0.1:$port/healthz"
    common=(--json --token "$token" --url "http://127.0.0.1:$port" --route openai --concurrency "$concurrency" --scenario "chunks=1 gap_ms=0" --timeout 60)
    "$load" "${common[@]}" --requests 400 > /dev/null
    gateway_before=$(ticks "$gateway")
    postgres_before=$(postgres_ticks)
    echo "== $store: $requests requests, $concurrency at a time" >&2
    "$load" "${common[@]}" --requests "$requests" > "$work/$store.report.json"
    echo "$(( $(ticks "$gateway") - gateway_before )) $(( $(postgres_ticks) - postgres_before ))" > "$work/$store.ticks"
    kill "$gateway"
    wait "$gateway" 2>/dev/null || true
done

python3 - "$work" "$requests" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
work, requests, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(f"Admission (limits read and counted) + ledger row, per request ({requests} one-chunk streams, one run each):")
print(f"{'store':<10}{'gateway CPU µs':>16}{'database CPU µs':>17}{'total µs':>10}{'TTFB p50 µs':>13}{'TTFB p99 µs':>13}{'req/s':>8}{'failed':>8}")
rows = {}
for store in ("sqlite", "postgres"):
    report = json.load(open(f"{work}/{store}.report.json"))
    gateway, database = (int(x) for x in open(f"{work}/{store}.ticks").read().split())
    per = lambda ticks: ticks / hz / requests * 1e6
    ttfb = report["timeToFirstByteMicros"]
    rate = requests / max(report["elapsedSeconds"], 1e-9)
    rows[store] = per(gateway) + (per(database) if store == "postgres" else 0)
    print(f"{store:<10}{per(gateway):>16.0f}{(per(database) if store == 'postgres' else 0):>17.0f}{rows[store]:>10.0f}"
          f"{ttfb['p50']:>13.0f}{ttfb['p99']:>13.0f}{rate:>8.0f}{report['streamsFailed']:>8}")
    if report["streamsFailed"]:
        print(f"FAILED: {store} had failed streams: {report.get('errors')}", file=sys.stderr)
        sys.exit(1)
print(f"PostgreSQL / SQLite, CPU per request (gateway + database): {rows['postgres'] / rows['sqlite']:.2f}")
EOF
