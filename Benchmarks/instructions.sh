#!/usr/bin/env bash
# Instructions per unit of work, counted by valgrind's callgrind, checked against recorded thresholds
# (README: Benchmarks). Instruction counts do not depend on the load of a shared host, which wall
# clock does, and perf's hardware counters are not available on our VMs; callgrind counts them by
# running the code on its own CPU model.
#
#   bash Benchmarks/instructions.sh            # measure and check against Benchmarks/Thresholds/<swift>/instructions.tsv
#   bash Benchmarks/instructions.sh update     # measure and record (commit the diff with the reason)
#
# Each unit is measured as the difference of two runs with different round counts, so the process's
# start-up and the fixture's construction cancel out:
#   decode     decode + both CRCs of one ~206-byte text-delta frame (the codec's hot path)
#   translate  decode + CRCs + translation into an OpenAI SSE chunk of the same frame
#   anthropic  decode + CRCs + base64 + metering + the SSE write of one Anthropic Messages text chunk
#              (InvokeModelWithResponseStream → `/v1/messages`)
#   responses  decode + CRCs + translation into a `response.output_text.delta` event (ConverseStream →
#              `/v1/responses`), per delta of a 1,000-delta message item
#   map        mapping the 200 KB coding-tool request (OpenAI → Converse)
#   relay      the in-process end-to-end stream (Benchmarks/GatewayFixtures): the simulator's frames
#              through `POST /v1/chat/completions`'s stream loop, per text delta of a 1,000-delta
#              stream (decode, CRCs, translate, the per-chunk metric, the write, the async loop)
#   token      one check of a known client token (header, SHA-256, the in-memory lookup, last use)
# A check fails when a count is more than 5% above its threshold, and also when it is more than 5%
# below it: an improvement must be recorded, or a later regression back to the old count would pass.
# Needs valgrind and binutils (strip); builds EventStreamProfile and GatewayProfile in release in .build-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-check}"
swift_version=$(swift --version 2>&1 | sed -n 's/.*Swift version \([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)
thresholds="Benchmarks/Thresholds/$swift_version/instructions.tsv"
tolerance_percent=5

SLUICE_BENCHMARKS=1 swift build -c release --scratch-path .build-bench --product EventStreamProfile >&2
SLUICE_BENCHMARKS=1 swift build -c release --scratch-path .build-bench --product GatewayProfile >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# valgrind cannot read the DWARF that Swift 6 writes; it needs no debug information to count.
for program in EventStreamProfile GatewayProfile; do
    strip --strip-debug -o "$work/$program" ".build-bench/release/$program"
done

# instructions PROGRAM MODE ROUNDS: the program's total instruction count (callgrind's "Collected").
instructions() {
    local log="$work/log.$2.$3"
    valgrind --tool=callgrind --callgrind-out-file="$work/out.$2.$3" "$work/$1" "$2" "$3" 2> "$log" > /dev/null \
        || { cat "$log" >&2; exit 1; }
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log"
}

# per_unit PROGRAM MODE LOW HIGH UNITS_PER_ROUND
per_unit() {
    local low high
    low="$(instructions "$1" "$2" "$3")"
    high="$(instructions "$1" "$2" "$4")"
    echo $(( (high - low) / (($4 - $3) * $5) ))
}

measured="$work/measured.tsv"
{
    # The fixture stream has 1,000 frames; the relay's stream has 1,000 text deltas.
    printf 'decode\t%s\n' "$(per_unit EventStreamProfile decode 10 30 1000)"
    printf 'translate\t%s\n' "$(per_unit EventStreamProfile translate 10 30 1000)"
    printf 'anthropic\t%s\n' "$(per_unit EventStreamProfile anthropic 10 30 1000)"
    printf 'responses\t%s\n' "$(per_unit EventStreamProfile responses 10 30 1000)"
    printf 'map\t%s\n' "$(per_unit EventStreamProfile map 2 6 1)"
    printf 'relay\t%s\n' "$(per_unit GatewayProfile chat 4 12 1000)"
    printf 'token\t%s\n' "$(per_unit GatewayProfile token 2000 6000 1)"
} > "$measured"

if [[ "$mode" == update ]]; then
    mkdir -p "$(dirname "$thresholds")"
    cp "$measured" "$thresholds"
    echo "recorded in $thresholds:"
    cat "$thresholds"
    exit 0
fi

if [[ ! -f "$thresholds" ]]; then
    echo "no instruction thresholds in $thresholds: record them with '$0 update'" >&2
    cat "$measured" >&2
    exit 1
fi

failed=0
while IFS=$'\t' read -r name count; do
    recorded="$(awk -v n="$name" '$1 == n {print $2}' "$thresholds")"
    if [[ -z "$recorded" ]]; then
        echo "$name: $count instructions, no threshold recorded" >&2
        failed=1
        continue
    fi
    change=$(awk -v m="$count" -v r="$recorded" 'BEGIN {printf "%+.1f", (m - r) * 100 / r}')
    verdict=ok
    if awk -v m="$count" -v r="$recorded" -v t="$tolerance_percent" 'BEGIN {exit !(m > r * (1 + t / 100))}'; then
        verdict="REGRESSION (more than $tolerance_percent% above the threshold)"
        failed=1
    elif awk -v m="$count" -v r="$recorded" -v t="$tolerance_percent" 'BEGIN {exit !(m < r * (1 - t / 100))}'; then
        verdict="IMPROVED by more than $tolerance_percent%: record it ('$0 update') so a regression back is caught"
        failed=1
    fi
    printf '%-10s %10s instructions per unit, threshold %10s (%s%%): %s\n' "$name" "$count" "$recorded" "$change" "$verdict"
done < "$measured"
exit "$failed"
