#!/usr/bin/env bash
# The wire path against a real reference, in one run: the same load (sluice-load, an independent C
# HTTP stack) goes to the Bedrock simulator directly, through nginx as a plain relay (no CRC, no
# auth, no translation), through SwiftNIO's floor (Tools/WireFloor: a bare relay on NIO's HTTP codecs,
# and one that forwards the upstream's bytes unparsed; no task, no auth, no decoding), and through
# Sluice's /bedrock passthrough and its OpenAI translation. The table says what each relay adds per
# chunk and to the first byte, and what it costs in CPU per relayed chunk and in memory per open stream.
#
#   bash Benchmarks/wire.sh
#
# Environment (all optional):
#   RUNS            "CONCURRENCY:STREAMS" pairs (default "100:2000 1000:4000")
#   SCENARIO        simulator scenario per stream (default "chunks=50 gap_ms=5")
#   SKIP_BUILD=1    use the binaries already in $SCRATCH/release (SLUICE_BIN, SLUICE_LOAD_BIN override the gateway
#                   and the load generator; the simulator stays the build's unless SIMULATOR_BIN)
#   SCRATCH         build folder (default .build-release)
#   KEEP=1          keep the work folder (reports, logs, nginx.conf)
#   SLUICE_ENV      extra environment for the gateway, e.g. "MALLOC_ARENA_MAX=4" (A/B runs)
#
# Needs nginx (Debian's nginx-light: `apt-get install nginx-light`), curl and python3.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

runs="${RUNS:-100:2000 1000:4000}"
scenario="${SCENARIO:-chunks=50 gap_ms=5}"
command -v nginx > /dev/null || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 2; }

source Benchmarks/common.sh
bench_start wire
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    SLUICE_LOAD=1 swift build -c release --scratch-path "${SCRATCH:-.build-release}" --product sluice-wire-floor >&2
fi
floor="${FLOOR_BIN:-$PWD/${SCRATCH:-.build-release}/release/sluice-wire-floor}"
[[ -x "$floor" ]] || { echo "missing $floor" >&2; exit 2; }
bench_cleanup_extra() { [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; }

sim_port="$(free_port)"
"${server_env[@]}" "$simulator" simulate --host 127.0.0.1 --port "$sim_port" --log-level warning > "$work/simulator.log" 2>&1 &
pids+=("$!")

# nginx as a plain streaming relay, configured as a production proxy in front of a streaming API
# would be: no buffering either way, HTTP/1.1 keep-alive to the upstream, two workers (one per core).
nginx_port="$(free_port)"
mkdir -p "$work/nginx"
cat > "$work/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    upstream simulator { server 127.0.0.1:$sim_port; keepalive 1024; }
    server {
        listen 127.0.0.1:$nginx_port backlog=4096;
        location / {
            proxy_pass http://simulator;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }
    }
}
EOF
nginx -c "$work/nginx.conf" -p "$work/nginx" -g 'daemon off;' 2> "$work/nginx/stderr.log" &
pids+=("$!")

# NIO's floor, two event loops (one per core, as nginx's workers): on NIO's HTTP codecs, and raw.
floor_port="$(free_port)"
"$floor" "$floor_port" "$sim_port" 2 > "$work/floor.log" 2>&1 &
floor_pid=$!
pids+=("$floor_pid")
raw_port="$(free_port)"
"$floor" "$raw_port" "$sim_port" 2 raw > "$work/floor-raw.log" 2>&1 &
raw_pid=$!
pids+=("$raw_pid")
for port in "$floor_port" "$raw_port"; do
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break; sleep 0.1; done
done

token="$("${server_env[@]}" "$sluice" token create --identity wire --group admins --ttl 1d --db "$work/sluice.db" | tail -n 1)"
gw_port=""
gw_pid=""
# A new gateway for each measured path, so that each path's memory per stream counts what its own
# streams grew (a path measured after another would find the first one's pools and arenas already
# grown, and look smaller than it is).
fresh_gateway() {
    if [[ -n "$gw_pid" ]]; then
        kill "$gw_pid" 2>/dev/null || true
        wait "$gw_pid" 2>/dev/null || true
    fi
    gw_port="$(free_port)"
    # shellcheck disable=SC2086
    "${server_env[@]}" ${SLUICE_ENV:-} "$sluice" serve --host 127.0.0.1 --port "$gw_port" --no-simulator \
        --upstream "http://127.0.0.1:$sim_port" --db "$work/sluice.db" --log-level warning >> "$work/gateway.log" 2>&1 &
    gw_pid=$!
    pids+=("$gw_pid")
    wait_up "http://127.0.0.1:$gw_port/healthz"
    sleep 0.3
}
wait_up "http://127.0.0.1:$sim_port/inference-profiles"
for _ in $(seq 100); do [[ -f "$work/nginx.pid" ]] && break; sleep 0.1; done
sleep 0.3

ticks="$(getconf CLK_TCK)"
# CPU ticks (user + system) of a process and its children that are still running (nginx's workers).
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        [[ -r "/proc/$pid/stat" ]] && total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
    done
    echo "$total"
}
nginx_pids() { local master; master="$(cat "$work/nginx.pid")"; echo "$master $(pgrep -P "$master" | tr '\n' ' ')"; }
rss_kib() { local total=0 pid; for pid in "$@"; do total=$(( total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status") )); done; echo "$total"; }

# measure NAME "PIDS" ARGS…: one load run; NAME.json is the load report, NAME.server the relay's
# CPU ticks used during the run, its RSS before the run and its largest RSS during it.
measure() {
    local name="$1" relay_pids="$2"; shift 2
    local before rss_before
    before="$( [[ -n "$relay_pids" ]] && cpu_ticks $relay_pids || echo 0)"
    rss_before="$( [[ -n "$relay_pids" ]] && rss_kib $relay_pids || echo 0)"
    ( while true; do [[ -n "$relay_pids" ]] && rss_kib $relay_pids; sleep 0.5; done ) > "$work/$name.rss" 2>/dev/null &
    local sampler=$!
    local status=0
    "$load" --json --token "$token" "$@" > "$work/$name.json" || status=$?
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    local after; after="$( [[ -n "$relay_pids" ]] && cpu_ticks $relay_pids || echo 0)"
    local peak; peak="$(sort -n "$work/$name.rss" | tail -n 1)"
    echo "$(( after - before )) $rss_before ${peak:-0}" > "$work/$name.server"
    if [[ $status -ne 0 && $status -ne 2 ]]; then
        echo "sluice-load failed ($status) for $name" >&2; cat "$work/$name.json" >&2; exit 1
    fi
}

# A few streams two at a time through a relay before it is measured: what its first requests touch
# once (code pages, caches, the first pooled connections, the store's pages) is not memory per
# stream, and at 100 streams it was a third of the figure. Far too few to grow its pools and arenas
# to the measured load's size, which still counts. The same for every relay.
warm_up() {
    "$load" --json --token "$token" "$@" --concurrency 2 --requests 10 --ramp-up 0 --scenario "chunks=5 gap_ms=1" --timeout 60 > /dev/null \
        || { echo "the warm-up failed: $*" >&2; exit 1; }
}

for pair in $runs; do
    c="${pair%%:*}"; n="${pair##*:}"
    ramp=$(( c >= 1000 ? 2 : 0 ))
    common=(--concurrency "$c" --requests "$n" --ramp-up "$ramp" --scenario "$scenario" --timeout 120)
    echo "== $c concurrent streams, $n streams: direct, nginx, NIO relay, NIO raw bytes, sluice /bedrock, sluice OpenAI" >&2
    measure "direct-$c" "" --direct --url "http://127.0.0.1:$sim_port" "${common[@]}"
    warm_up --direct --url "http://127.0.0.1:$nginx_port"
    measure "nginx-$c" "$(nginx_pids)" --direct --url "http://127.0.0.1:$nginx_port" "${common[@]}"
    warm_up --direct --url "http://127.0.0.1:$floor_port"
    measure "floor-$c" "$floor_pid" --direct --url "http://127.0.0.1:$floor_port" "${common[@]}"
    warm_up --direct --url "http://127.0.0.1:$raw_port"
    measure "raw-$c" "$raw_pid" --direct --url "http://127.0.0.1:$raw_port" "${common[@]}"
    fresh_gateway
    warm_up --url "http://127.0.0.1:$gw_port" --route bedrock
    measure "bedrock-$c" "$gw_pid" --url "http://127.0.0.1:$gw_port" --route bedrock "${common[@]}"
    fresh_gateway
    warm_up --url "http://127.0.0.1:$gw_port" --route openai
    measure "openai-$c" "$gw_pid" --url "http://127.0.0.1:$gw_port" --route openai "${common[@]}"
done

echo
echo "Scenario \"$scenario\" (+stamps=1), $(nproc) cores, $(uname -r), loopback; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')."
python3 - "$work" "$runs" "$ticks" <<'EOF'
import json, sys
work, runs, ticks = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
def load(name):
    with open(f"{work}/{name}.json") as f:
        return json.load(f)
def server(name):
    used, before, peak = (int(x) for x in open(f"{work}/{name}.server").read().split())
    return used, before, peak
print(f"{'streams':>7} {'path':<16} {'+chunk p50':>10} {'+chunk p99':>10} {'+TTFB p50':>9} {'CPU/chunk':>10} {'x nginx':>7} {'KiB/stream':>10} {'errors':>6}")
for pair in runs:
    c = pair.split(":")[0]
    direct = load(f"direct-{c}")
    nginx_cpu = None
    for path, label in (("nginx", "nginx"), ("floor", "NIO relay"), ("raw", "NIO raw bytes"), ("bedrock", "sluice /bedrock"), ("openai", "sluice openai")):
        report = load(f"{path}-{c}")
        used, before, peak = server(f"{path}-{c}")
        relayed = report["streamsOK"] * report["expectedChunksPerStream"]
        cpu = used / ticks / max(relayed, 1) * 1e6
        if path == "nginx":
            nginx_cpu = cpu
        ratio = cpu / nginx_cpu if nginx_cpu else 0
        chunk, ttfb = report["chunkLatencyMicros"], report["timeToFirstByteMicros"]
        per_stream = (peak - before) / int(c)
        errors = report["streamsFailed"]
        print(f"{c:>7} {label:<16} {(chunk['p50'] - direct['chunkLatencyMicros']['p50']) / 1000:>+9.2f}ms "
              f"{(chunk['p99'] - direct['chunkLatencyMicros']['p99']) / 1000:>+9.2f}ms "
              f"{(ttfb['p50'] - direct['timeToFirstByteMicros']['p50']) / 1000:>+8.2f}ms "
              f"{cpu:>8.1f}µs {ratio:>6.2f}x {per_stream:>10.1f} {errors:>6}")
        for kind, count in sorted(report["errors"].items()):
            print(f"{'':>25} error {kind}: {count} ({report['errorSamples'].get(kind, '')[:100]})")
print()
print("NIO relay / NIO raw bytes: Tools/WireFloor, SwiftNIO with nothing above it (no task, no auth, no")
print("decoding): on NIO's HTTP codecs, and forwarding the upstream's bytes unparsed. The floor for any relay on NIO.")
print("+ = added over the simulator reached directly in the same run (chunk latency: arrival − the")
print("simulator's send stamp). CPU/chunk: the relay's user+system CPU during the run / chunks relayed")
print("(streams × chunks per stream). KiB/stream: the relay's peak RSS during the run − its RSS before, / streams;")
print("each Sluice path runs in a gateway started for it; each relay served 10 warm-up streams before.")
EOF
