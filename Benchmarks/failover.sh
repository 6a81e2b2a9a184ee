#!/usr/bin/env bash
# What failover costs a request's time to first byte (README, "Several upstreams"): it should add at
# most one upstream round trip. Release binaries, everything on loopback, one run:
#
#   bash Benchmarks/failover.sh
#
# Two simulators: `healthy`, and `throttler`, which refuses every model request with 429
# ThrottlingException (`sluice simulate --fail-percent 100`). The same sequential load
# (`sluice-load`, one stream at a time, REQUESTS streams of SCENARIO, OpenAI route) runs:
#   direct    against the healthy simulator itself (--direct): one upstream round trip to the first byte
#   single    through a gateway whose one upstream is `healthy`
#   failover  through a gateway with upstreams [throttler (weight 1000: first for every key), healthy]
#             and a 1 ms cooldown, so every request is refused by the throttler, then served by healthy
#   refused   through a gateway whose one upstream is `throttler` (maxAttempts 1): every request gets
#             the 429 after one upstream call
#   local     the same gateway, for a model its upstream does not serve: the 404 comes without any
#             upstream call
# refused − local is one upstream round trip as the gateway makes it (its HTTP client, the error body
# read), the yardstick for failover − single. It prints the time to first byte of each (p50, p90,
# p99), the comparison, and the gateway's failover counter (it must count every failover request).
#
# Environment (all optional):
#   REQUESTS        streams per run (default 400)
#   SCENARIO        simulator scenario (default "chunks=2")
#   SKIP_BUILD=1    use the binaries already in $SCRATCH/release (SLUICE_BIN, SLUICE_LOAD_BIN to override)
#   SCRATCH         build folder (default .build-release)
#   KEEP=1          keep the work folder (reports, logs, configs)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

requests="${REQUESTS:-400}"
scenario="${SCENARIO:-chunks=2}"
source Benchmarks/common.sh
bench_start failover

healthy_port="$(free_port)"
"${server_env[@]}" "$simulator" simulate --port "$healthy_port" --log-level warning > "$work/healthy.log" 2>&1 &
pids+=("$!")
throttler_port="$(free_port)"
"${server_env[@]}" "$simulator" simulate --port "$throttler_port" --fail-percent 100 --log-level warning > "$work/throttler.log" 2>&1 &
pids+=("$!")

metrics_token="failover-benchmark-metrics-token"
token="$("${server_env[@]}" "$sluice" token create --identity failover --group admins --ttl 1d --db "$work/sluice.db" | tail -n 1)"
# gateway NAME UPSTREAMS-JSON: a gateway on its own port with these upstreams; prints the port.
gateway() {
    local name="$1" upstreams="$2" attempts="${3:-3}" port
    port="$(free_port)"
    cat > "$work/$name.json" <<EOF
{"server": {"port": $port},
 "upstreams": $upstreams,
 "routing": {"cooldownSeconds": 0.001, "maxCooldownSeconds": 0.001, "maxAttempts": $attempts},
 "metrics": {"token": "$metrics_token"},
 "policies": [{"source": "group:admins"}]}
EOF
    "${server_env[@]}" "$sluice" serve --config "$work/$name.json" --db "$work/sluice.db" --log-level warning > "$work/$name.log" 2>&1 &
    pids+=("$!")
    echo "$port"
}
healthy_upstream="{\"name\": \"healthy\", \"region\": \"us-east-1\", \"endpoint\": \"http://127.0.0.1:$healthy_port\"}"
single_port="$(gateway single "[$healthy_upstream]")"
throttler_upstream="{\"name\": \"throttler\", \"region\": \"us-east-1\", \"endpoint\": \"http://127.0.0.1:$throttler_port\", \"weight\": 1000, \"models\": [\"*sonnet*\"]}"
failover_port="$(gateway failover "[$throttler_upstream, $healthy_upstream]")"
refused_port="$(gateway refused "[$throttler_upstream]" 1)"
wait_up "http://127.0.0.1:$healthy_port/inference-profiles"
wait_up "http://127.0.0.1:$single_port/healthz"
wait_up "http://127.0.0.1:$failover_port/healthz"
wait_up "http://127.0.0.1:$refused_port/healthz"

common=(--json --token "$token" --concurrency 1 --requests "$requests" --scenario "$scenario" --timeout 60)
# A warm-up run each (connections, first-use costs), then the measured ones.
sonnet=us.anthropic.claude-sonnet-4-5-20250929-v1:0
haiku=us.anthropic.claude-haiku-4-5-20251001-v1:0
for run in direct single failover refused local; do
    case "$run" in
        direct) target=(--direct --url "http://127.0.0.1:$healthy_port") ;;
        single) target=(--url "http://127.0.0.1:$single_port" --route openai) ;;
        failover) target=(--url "http://127.0.0.1:$failover_port" --route openai) ;;
        refused) target=(--url "http://127.0.0.1:$refused_port" --route openai) ;;
        local) target=(--url "http://127.0.0.1:$refused_port" --route openai --model "$haiku") ;;
    esac
    # A warm-up run each (connections, first-use costs), then the measured one. The refused and local
    # runs fail every stream by design (sluice-load exits 2 then).
    status=0
    "$load" "${common[@]}" --model "$sonnet" "${target[@]}" --requests 20 > /dev/null || status=$?
    echo "== $run: $requests sequential streams" >&2
    "$load" "${common[@]}" --model "$sonnet" "${target[@]}" > "$work/$run.report.json" || status=$?
    [[ $status -eq 0 || $status -eq 2 ]] || { echo "sluice-load failed ($status) on $run" >&2; exit 1; }
done
curl -fsS -H "Authorization: Bearer $metrics_token" "http://127.0.0.1:$failover_port/metrics" > "$work/failover.metrics"

python3 - "$work" "$requests" <<'EOF'
import json, re, sys
work, requests = sys.argv[1], int(sys.argv[2])
runs = ("direct", "single", "failover", "refused", "local")
reports = {run: json.load(open(f"{work}/{run}.report.json")) for run in runs}
print(f"Time to first byte, µs ({requests} sequential streams each, one run):")
print(f"{'run':<10}{'p50':>10}{'p90':>10}{'p99':>10}{'ok':>7}{'failed':>8}")
for run, report in reports.items():
    t = report["timeToFirstByteMicros"]
    print(f"{run:<10}{t['p50']:>10.0f}{t['p90']:>10.0f}{t['p99']:>10.0f}{report['streamsOK']:>7}{report['streamsFailed']:>8}")
p50 = {run: report["timeToFirstByteMicros"]["p50"] for run, report in reports.items()}
added = p50["failover"] - p50["single"]
trip = p50["refused"] - p50["local"]
print(f"failover added {added:.0f} µs at p50 (failover − single)")
print(f"one upstream round trip as the gateway makes it: {trip:.0f} µs at p50 (refused − local); failover/round trip = {added / trip:.2f}")
print(f"(the simulator's own time to first byte, measured from curl: {p50['direct']:.0f} µs)")
metrics = open(f"{work}/failover.metrics").read()
match = re.search(r'^sluice_failovers_total\{from="throttler",reason="upstream_throttled"\} (\S+)$', metrics, re.M)
failovers = float(match.group(1)) if match else 0
print(f"failovers counted by the gateway: {failovers:.0f} (warm-up 20 + measured {requests})")
failed = sum(reports[run]["streamsFailed"] for run in ("direct", "single", "failover"))
refusals = {run: reports[run]["errors"] for run in ("refused", "local")}
print(f"refused: {refusals['refused']}, local: {refusals['local']}")
if refusals["refused"].get("http_429") != requests or refusals["local"].get("http_404") != requests:
    print("FAILED: the refused run must get 429s and the local run 404s", file=sys.stderr)
    sys.exit(1)
if failed or failovers < requests:
    print("FAILED: streams failed, or requests were not failed over", file=sys.stderr)
    sys.exit(1)
EOF
