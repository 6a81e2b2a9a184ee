#!/usr/bin/env bash
# Builds a libFuzzer target and runs it for N seconds, seeded from the target's Seeds/ folder when it
# has one (else from the repository's event-stream vectors) and from its Regressions/ folder.
#   Fuzz/run.sh EventStreamDecoderFuzzer 60
#   Fuzz/run.sh ChatRequestMapperFuzzer 60
# A crash, a hang (-timeout) or any single allocation over 2 MB (the decoder reserves at most 256 KiB
# ahead of the bytes it has) fails the run; the input that
# did it is written to fuzz-artifacts/ — turn it into a regression test (README.md, Fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?target name}
seconds=${2:-60}

SLUICE_FUZZ=1 swift build -c debug --scratch-path .build-fuzz --product "$target" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 | grep -v 'Cannot export local symbol' || true
binary=.build-fuzz/debug/$target
test -x "$binary"

corpus=$(mktemp -d)
if [ -d "Fuzz/$target/Seeds" ]; then
    # A target with its own hand-written seeds (Fuzz/<target>/Seeds/) starts from those.
    cp Fuzz/"$target"/Seeds/* "$corpus/"
else
    # The decoder's seeds: every committed vector, once as one read (pattern 0x00) and once with CRCs
    # recomputed and odd chunking (0x85).
    for file in Tests/StreamCoreTests/Fixtures/eventstream/encoded/*/*; do
        [ "$(stat -c %s "$file")" -le 4096 ] || continue
        name=$(basename "$file")
        { printf '\x00'; cat "$file"; } > "$corpus/$name"
        { printf '\x85'; cat "$file"; } > "$corpus/$name.fixed"
    done
fi
# Plus the regression inputs of earlier findings.
if [ -d "Fuzz/$target/Regressions" ]; then cp Fuzz/"$target"/Regressions/* "$corpus/" 2>/dev/null || true; fi
# A libFuzzer dictionary (Fuzz/<target>/<target>.dict: the format's keywords) lets mutations insert
# whole tokens such as "tool_calls" instead of guessing them byte by byte.
options=()
if [ -f "Fuzz/$target/$target.dict" ]; then options+=("-dict=Fuzz/$target/$target.dict"); fi

mkdir -p fuzz-artifacts
log=$(mktemp)
status=0
"$binary" "$corpus" "${options[@]}" -max_total_time="$seconds" -timeout=10 -malloc_limit_mb="${MALLOC_LIMIT_MB:-2}" -rss_limit_mb=2048 \
    -artifact_prefix=fuzz-artifacts/ -print_final_stats=1 >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzzer $target failed (exit $status); the input is in fuzz-artifacts/" >&2
else
    grep -E 'DONE|stat::number_of_executed_units|stat::peak_rss_mb' "$log" || true
fi
rm -rf "$corpus" "$log"
exit "$status"
