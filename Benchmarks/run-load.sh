#!/usr/bin/env bash
# Gateway-added latency, side by side: `sluice-load` drives the Bedrock simulator directly, then the
# same load through `sluice serve` (Bedrock route /bedrock/…, same bytes; and the OpenAI route), at
# each concurrency. The difference of the two runs is what the gateway adds. Everything on loopback.
#
#   bash Benchmarks/run-load.sh
#
# Environment (all optional):
#   CONCURRENCIES    space-separated stream counts (default "1 100 1000")
#   DURATION         seconds of new streams per run (default 10)
#   SCENARIO         simulator scenario per stream (default "chunks=20 gap_ms=50": 1 s streams, so
#                    100 concurrent streams start 100 new streams/s)
#   THROUGHPUT_SCENARIO, THROUGHPUT_CONCURRENCY   the relay throughput run (default "chunks=2000 gap_ms=0", 64)
#   SKIP_BUILD=1     use the binaries already in $SCRATCH/release
#   SLUICE_BIN, SLUICE_LOAD_BIN   other binaries to run (with SKIP_BUILD=1)
#   SCRATCH          build folder (default .build-release)
#   KEEP=1           keep the work folder (JSON reports, server logs)
#   SOAK_STREAMS=N   instead of the table: N concurrent streams through the gateway for SOAK_SECONDS
#                    (default 60) on SOAK_ROUTE (default openai) with SOAK_SCENARIO (default
#                    "chunks=30 gap_ms=1000"), ramped up over SOAK_RAMP s (default 10), each stream
#                    allowed SOAK_TIMEOUT s (default 300), sampling the
#                    gateway's RSS and CPU every 5 s: zero errors and flat memory after warm-up expected
#   SOAK_HTTP2=1     the soak's clients multiplex over HTTP/2: the gateway serves TLS (a throwaway
#                    self-signed certificate) and offers h2 by ALPN. Over HTTP/1.1 every stream is two
#                    sockets in the gateway (client + upstream), so a 20,000-descriptor hard limit
#                    stops near 9,990 streams; over HTTP/2 the client side is one socket per
#                    SOAK_H2_STREAMS streams (default 50: libcurl 7.88 resets every finished stream,
#                    and NIOHTTP2 closes a connection after 200 resets in 30 s, README: Load)
#
# Prints one table row per (concurrency, route): per-chunk latency p50/p99 direct and through the
# gateway and their difference, time to first byte likewise, chunks/s, failed streams; then the
# gateway's CPU per run (from /proc/<pid>/stat, 100% = one core), its RSS while streams are open and
# its peak RSS (VmHWM), and the relay throughput run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

concurrencies="${CONCURRENCIES:-1 100 1000}"
duration="${DURATION:-10}"
scenario="${SCENARIO:-chunks=20 gap_ms=50}"
throughput_scenario="${THROUGHPUT_SCENARIO:-chunks=2000 gap_ms=0}"
throughput_concurrency="${THROUGHPUT_CONCURRENCY:-64}"

source Benchmarks/common.sh
bench_start load

sim_port="$(free_port)"
"${server_env[@]}" "$simulator" simulate --host 127.0.0.1 --port "$sim_port" --log-level warning > "$work/simulator.log" 2>&1 &
sim_pid=$!
pids+=("$sim_pid")

token="$("${server_env[@]}" "$sluice" token create --identity load --group admins --ttl 1d --db "$work/sluice.db" | tail -n 1)"

gw_port="$(free_port)"
gw_scheme=http
tls=()
curl_tls=()
if [[ -n "${SOAK_STREAMS:-}" && "${SOAK_HTTP2:-}" == 1 ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null
    gw_scheme=https
    tls=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
    curl_tls=(--cacert "$work/cert.pem")
fi
"${server_env[@]}" "$sluice" serve --host 127.0.0.1 --port "$gw_port" --no-simulator "${tls[@]}" \
    --upstream "http://127.0.0.1:$sim_port" --db "$work/sluice.db" --log-level warning > "$work/gateway.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")

for _ in $(seq 100); do
    curl -fsS "${curl_tls[@]}" "$gw_scheme://127.0.0.1:$gw_port/healthz" > /dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "${curl_tls[@]}" "$gw_scheme://127.0.0.1:$gw_port/healthz" > /dev/null || { cat "$work/gateway.log" >&2; exit 1; }

ticks="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }          # utime + stime
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

# run NAME ARGS…: one load run; writes $work/NAME.json, and for gateway runs $work/NAME.server with
# the gateway's CPU % and its largest RSS sampled every 0.5 s during the run.
run() {
    local name="$1"; shift
    local before_ticks start rss_before
    before_ticks="$(cpu_ticks "$gw_pid")"; start="$(now)"; rss_before="$(rss_kib "$gw_pid")"
    local sampler="$work/$name.rss"
    ( while kill -0 "$gw_pid" 2>/dev/null; do rss_kib "$gw_pid"; sleep 0.5; done ) > "$sampler" &
    local sampler_pid=$!
    local status=0
    "$load" --json --token "$token" "$@" > "$work/$name.json" || status=$?
    kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true
    local after_ticks end
    after_ticks="$(cpu_ticks "$gw_pid")"; end="$(now)"
    local peak; peak="$(sort -n "$sampler" | tail -n 1)"
    echo "$(awk -v a="$after_ticks" -v b="$before_ticks" -v t="$ticks" -v s="$start" -v e="$end" \
        'BEGIN {printf "%.0f", (a - b) / t / (e - s) * 100}') $rss_before ${peak:-0}" > "$work/$name.server"
    if [[ $status -ne 0 && $status -ne 2 ]]; then
        echo "sluice-load failed ($status) for $name" >&2; cat "$work/$name.json" >&2; exit 1
    fi
}

if [[ -n "${SOAK_STREAMS:-}" ]]; then
    soak_seconds="${SOAK_SECONDS:-60}"
    echo "== soak: $SOAK_STREAMS streams for $soak_seconds s through the gateway" >&2
    ( prev="$(cpu_ticks "$gw_pid")"; t=0
      while kill -0 "$gw_pid" 2>/dev/null; do
          sleep 5; t=$((t + 5)); cur="$(cpu_ticks "$gw_pid")"
          echo "t=${t}s gateway RSS $(( $(rss_kib "$gw_pid") / 1024 )) MiB, CPU $(( (cur - prev) * 100 / ticks / 5 ))%, fds $(ls "/proc/$gw_pid/fd" | wc -l)"
          prev="$cur"
      done ) &
    sampler_pid=$!
    pids+=("$sampler_pid")
    status=0
    h2=()
    [[ "$gw_scheme" == https ]] && h2=(--http2 --streams-per-connection "${SOAK_H2_STREAMS:-50}" "${curl_tls[@]}")
    "$load" --token "$token" --url "$gw_scheme://127.0.0.1:$gw_port" "${h2[@]}" --route "${SOAK_ROUTE:-openai}" \
        --concurrency "$SOAK_STREAMS" --duration "$soak_seconds" --ramp-up "${SOAK_RAMP:-10}" \
        --scenario "${SOAK_SCENARIO:-chunks=30 gap_ms=1000}" --timeout "${SOAK_TIMEOUT:-300}" --connect-timeout 60 || status=$?
    kill "$sampler_pid" 2>/dev/null || true
    echo "gateway peak RSS (VmHWM): $(( $(hwm_kib "$gw_pid") / 1024 )) MiB"
    exit "$status"
fi

for c in $concurrencies; do
    ramp=$(( c >= 1000 ? 2 : 0 ))
    common=(--concurrency "$c" --duration "$duration" --ramp-up "$ramp" --scenario "$scenario")
    echo "== $c concurrent streams: direct, gateway /bedrock, gateway OpenAI ($duration s each)" >&2
    run "direct-$c" --direct --url "http://127.0.0.1:$sim_port" "${common[@]}"
    run "bedrock-$c" --url "http://127.0.0.1:$gw_port" --route bedrock "${common[@]}"
    run "openai-$c" --url "http://127.0.0.1:$gw_port" --route openai "${common[@]}"
done

echo "== relay throughput: $throughput_concurrency streams of \"$throughput_scenario\"" >&2
tp=(--concurrency "$throughput_concurrency" --duration "$duration" --scenario "$throughput_scenario")
run "tp-direct" --direct --url "http://127.0.0.1:$sim_port" "${tp[@]}"
run "tp-bedrock" --url "http://127.0.0.1:$gw_port" --route bedrock "${tp[@]}"
run "tp-openai" --url "http://127.0.0.1:$gw_port" --route openai "${tp[@]}"

echo
echo "Scenario \"$scenario\" (+stamps=1), $duration s per run, $(nproc) cores, loopback; latencies in µs."
echo "added = gateway − direct (same concurrency, runs taken back to back)."
python3 - "$work" "$concurrencies" "$ticks" <<'EOF'
import json, sys
work, concurrencies = sys.argv[1], sys.argv[2].split()
def load(name):
    with open(f"{work}/{name}.json") as f:
        return json.load(f)
def server(name):
    cpu, before, peak = open(f"{work}/{name}.server").read().split()
    return int(cpu), int(before), int(peak)
header = (f"{'streams':>7} {'route':<8} {'chunk p50':>9} {'p99':>8} {'+p50':>7} {'+p99':>7} "
          f"{'ttfb p50':>9} {'p99':>8} {'+p50':>7} {'+p99':>7} {'chunks/s':>9} {'failed':>6} {'gw CPU':>6} {'gw RSS MiB':>10}")
print(header)
for c in concurrencies:
    direct = load(f"direct-{c}")
    rows = [("direct", direct, None)] + [(r, load(f"{r}-{c}"), server(f"{r}-{c}")) for r in ("bedrock", "openai")]
    for route, report, srv in rows:
        chunk, ttfb = report["chunkLatencyMicros"], report["timeToFirstByteMicros"]
        if srv is None:
            added = ["", "", "", ""]
            cpu, rss = "", ""
        else:
            added = [f"{chunk['p50'] - direct['chunkLatencyMicros']['p50']:+.0f}",
                     f"{chunk['p99'] - direct['chunkLatencyMicros']['p99']:+.0f}",
                     f"{ttfb['p50'] - direct['timeToFirstByteMicros']['p50']:+.0f}",
                     f"{ttfb['p99'] - direct['timeToFirstByteMicros']['p99']:+.0f}"]
            cpu, rss = f"{srv[0]}%", f"{srv[2] / 1024:.0f}"
        print(f"{c:>7} {route:<8} {chunk['p50']:>9.0f} {chunk['p99']:>8.0f} {added[0]:>7} {added[1]:>7} "
              f"{ttfb['p50']:>9.0f} {ttfb['p99']:>8.0f} {added[2]:>7} {added[3]:>7} "
              f"{report['chunksPerSecond']:>9.0f} {report['streamsFailed']:>6} {cpu:>6} {rss:>10}")
        for kind, count in sorted(report["errors"].items()):
            print(f"{'':>16} error {kind}: {count} ({report['errorSamples'].get(kind, '')[:100]})")
print()
print("relay throughput (chunks/s; gap_ms=0):")
for name in ("tp-direct", "tp-bedrock", "tp-openai"):
    report = load(name)
    extra = ""
    if name != "tp-direct":
        cpu, _, peak = server(name)
        extra = f", gateway CPU {cpu}%, RSS {peak / 1024:.0f} MiB"
    print(f"  {name[3:]:<8} {report['chunksPerSecond']:>10.0f} chunks/s, {report['bytesPerSecond'] / 1048576:.1f} MiB/s, "
          f"chunk p50 {report['chunkLatencyMicros']['p50']:.0f} µs p99 {report['chunkLatencyMicros']['p99']:.0f} µs, "
          f"failed {report['streamsFailed']}{extra}")
last = concurrencies[-1]
cpu, before, peak = server(f"bedrock-{last}")
print()
print(f"gateway memory at {last} open streams (/bedrock run): RSS {before / 1024:.0f} MiB before, "
      f"{peak / 1024:.0f} MiB peak during → {(peak - before) / int(last):.1f} KiB per open stream")
EOF
echo "gateway peak RSS (VmHWM): $(( $(hwm_kib "$gw_pid") / 1024 )) MiB; total CPU $(( $(cpu_ticks "$gw_pid") / ticks )) s; simulator peak RSS $(( $(hwm_kib "$sim_pid") / 1024 )) MiB"
