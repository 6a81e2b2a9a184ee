#!/usr/bin/env bash
# Records the malloc-count thresholds that CI checks (README: Benchmarks), for this toolchain:
#   Benchmarks/Thresholds/update.sh            # writes Benchmarks/Thresholds/<swift major.minor>/
# Run it only after a deliberate change in allocations, and commit the diff with the reason.
#
# package-benchmark 1.38.1 writes `<Target>.<name>.p90.json` with spaces and slashes turned into
# `_`, but `thresholds check` reads the file under the benchmark's own name (spaces kept). So the
# update goes to a temporary folder and each file is moved to the name the check reads. Our
# benchmark names contain no `_` or `/`, so turning `_` back into spaces restores them exactly.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift_version=$(swift --version 2>&1 | sed -n 's/.*Swift version \([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)
destination="Benchmarks/Thresholds/$swift_version"
written=$(mktemp -d)
trap 'rm -rf "$written"' EXIT

SLUICE_BENCHMARKS=1 swift package --scratch-path .build-bench --allow-writing-to-directory "$written" \
    benchmark thresholds update --target EventStreamBenchmarks --target TranslateBenchmarks --target GatewayBenchmarks \
    --metric mallocCountTotal --path "$written" --no-progress

mkdir -p "$destination"
rm -f "$destination"/*.p90.json
for file in "$written"/*.p90.json; do
    name=$(basename "$file")
    target=${name%%.*}
    rest=${name#*.}
    mv "$file" "$destination/$target.${rest//_/ }"
done
ls "$destination"
