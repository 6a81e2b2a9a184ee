# Shared by the scripts that run the release binaries on loopback (run-load.sh, wire.sh,
# failover.sh): `source` it after `cd` to the package root, then call `bench_start NAME`.
#
# bench_start builds `sluice` and `sluice-load` in release in $SCRATCH (default .build-release)
# unless SKIP_BUILD=1 (SLUICE_BIN, SLUICE_LOAD_BIN override the binaries), raises the open-file
# limit, and sets:
#   sluice, load   the binaries
#   simulator      the binary the simulators run: the build's `sluice` even when SLUICE_BIN names
#                  another (SIMULATOR_BIN overrides), so that two gateways compared with SLUICE_BIN
#                  meet the same upstream (the simulator's own speed moves every relay's figures)
#   work           a fresh work folder, removed at exit unless KEEP=1
#   pids           processes to stop at exit (append yours); bench_cleanup_extra, if a script
#                  defines it, runs first
#   server_env     `env …` for the servers: no AWS credentials, no home config (HOME is the work
#                  folder), the store in the work folder, JSON logs
# and defines free_port and wait_up URL.

bench_start() {
    local name="$1"
    local scratch="${SCRATCH:-.build-release}"
    if [[ "${SKIP_BUILD:-}" != 1 ]]; then
        echo "== building release binaries in $scratch" >&2
        # sluice-load (libcurl) is declared only with SLUICE_LOAD set; both builds see the same manifest.
        SLUICE_LOAD=1 swift build -c release --scratch-path "$scratch" --product sluice >&2
        SLUICE_LOAD=1 swift build -c release --scratch-path "$scratch" --product sluice-load >&2
    fi
    sluice="${SLUICE_BIN:-$PWD/$scratch/release/sluice}"
    load="${SLUICE_LOAD_BIN:-$PWD/$scratch/release/sluice-load}"
    simulator="${SIMULATOR_BIN:-$PWD/$scratch/release/sluice}"
    [[ -x "$sluice" && -x "$load" && -x "$simulator" ]] || { echo "missing $sluice, $load or $simulator" >&2; exit 2; }
    # Every stream is a socket in the load generator, and two in each relay (client + upstream).
    ulimit -n "$(ulimit -Hn)"
    work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-$name.XXXXXX")"
    pids=()
    trap bench_cleanup EXIT
    # The servers see no AWS credentials and no home config: they can only talk to each other.
    server_env=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE
        -u AWS_BEARER_TOKEN_BEDROCK HOME="$work" SLUICE_DB="$work/sluice.db" SLUICE_LOG_FORMAT=json)
}

bench_cleanup() {
    if declare -F bench_cleanup_extra > /dev/null; then bench_cleanup_extra; fi
    local pid index
    # Last started first (the relays before the simulator they keep connections to), and what has
    # not stopped after 10 s is killed: once, a simulator stopped by SIGTERM while relays still held
    # connections to it kept this script waiting for ever.
    for (( index = ${#pids[@]} - 1; index >= 0; index-- )); do kill "${pids[index]}" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ "${KEEP:-}" == 1 ]]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() {
    for _ in $(seq 100); do curl -fsS "$1" > /dev/null 2>&1 && return 0; sleep 0.1; done
    echo "not up: $1" >&2; return 1
}
