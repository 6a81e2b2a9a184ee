#!/usr/bin/env bash
# Builds a package that depends on StreamCore the way another project would: by a version tag of
# this repository (a bare clone of HEAD, tagged 0.0.1), not by path. SwiftPM refuses unsafe flags in
# such a dependency unless its manifest is tools-version 6.2 or later, so this fails if StreamCore's
# release-only `-enforce-exclusivity=unchecked` ever made it unusable (README: Benchmarks).
#
#   bash Tests/support/as-dependency.sh            # debug build of the consumer
#   CONFIGURATION=release bash Tests/support/as-dependency.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

git clone -q --bare "$root" "$work/sluice.git"
git -C "$work/sluice.git" tag 0.0.1 HEAD
mkdir -p "$work/consumer/Sources/Consumer"
cat > "$work/consumer/Package.swift" <<MANIFEST
// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "consumer",
    dependencies: [.package(url: "file://$work/sluice.git", from: "0.0.1")],
    targets: [
        .executableTarget(
            name: "Consumer",
            dependencies: [
                .product(name: "StreamCore", package: "sluice"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        )
    ]
)
MANIFEST
# swift-nio is named by the consumer too (it uses ByteBuffer); the version Sluice resolves.
sed -i 's|dependencies: \[.package(url: "file://|dependencies: [.package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"), .package(url: "file://|' "$work/consumer/Package.swift"
cat > "$work/consumer/Sources/Consumer/main.swift" <<'SOURCE'
import NIOCore
import StreamCore

// One frame through the encoder and back through the decoder (both CRCs checked).
var frame = ByteBuffer()
try EventStreamEncoder.write(headers: [], payload: ByteBuffer(string: "hello"), into: &frame)
var decoder = EventStreamDecoder()
try decoder.feed(frame)
guard let message = try decoder.next(), message.payload == ByteBuffer(string: "hello") else { fatalError("the frame did not decode") }
print("StreamCore as a versioned dependency: decoded one frame")
SOURCE
cd "$work/consumer"
swift build -c "${CONFIGURATION:-debug}" 2>&1 | tail -n 3
swift run -c "${CONFIGURATION:-debug}" --skip-build Consumer
