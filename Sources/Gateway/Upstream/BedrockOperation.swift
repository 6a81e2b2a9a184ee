/// The Bedrock Runtime operations Sluice calls or passes through, by their path suffix.
package enum BedrockOperation: String, Sendable, CaseIterable {
    case converse
    case converseStream = "converse-stream"
    case invoke
    case invokeWithResponseStream = "invoke-with-response-stream"
    case countTokens = "count-tokens"

    /// Whether the answer is an event stream.
    package var isStreaming: Bool {
        self == .converseStream || self == .invokeWithResponseStream
    }

    /// Low-cardinality name for logs and metrics.
    package var name: String { self.rawValue }
}

/// Percent-encoding of one path segment as AWS SDKs send it: everything but RFC 3986's unreserved
/// characters is encoded, so `:` becomes `%3A` and `/` becomes `%2F`.
package func percentEncodePathSegment(_ segment: String) -> String {
    let hex: StaticString = "0123456789ABCDEF"
    let bytes = segment.utf8
    let escaped = bytes.reduce(0) { $0 + (isUnreserved($1) ? 0 : 1) }
    guard escaped > 0 else { return segment }
    return hex.withUTF8Buffer { hex in
        String(unsafeUninitializedCapacity: bytes.count + 2 * escaped) { out in
            var count = 0
            for byte in bytes {
                if isUnreserved(byte) {
                    out[count] = byte
                    count += 1
                } else {
                    out[count] = UInt8(ascii: "%")
                    out[count + 1] = hex[Int(byte >> 4)]
                    out[count + 2] = hex[Int(byte & 0xF)]
                    count += 3
                }
            }
            return count
        }
    }
}

/// Why `modelID` cannot be a Bedrock model id (a model, an inference profile, an ARN), or `nil`.
/// Bedrock's ids are at most 2,048 characters of ASCII letters, digits and `.:/-`; this refuses only
/// what no id can be (an id Bedrock does not know is Bedrock's to refuse): too long, whitespace,
/// control or non-ASCII characters, or `.` and `..`, which a server normalising the path would read
/// as a step out of `/model/`. So a 100 KB "model" is neither sent, nor written to the ledger, nor
/// echoed back in full.
func modelIDProblem(_ modelID: String) -> String? {
    if modelID.utf8.count > 2048 { return "is longer than Bedrock's 2,048 characters" }
    if modelID == "." || modelID == ".." { return "is not a model id" }
    if modelID.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) { return "contains a space, a control or a non-ASCII character" }
    return nil
}

/// RFC 3986's unreserved characters: letters, digits, `-`, `.`, `_` and `~`.
private func isUnreserved(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
        true
    default: false
    }
}

/// Decodes `%XX` escapes in one path segment's bytes; `nil` for a malformed escape or invalid UTF-8.
package func percentDecodePathSegment(_ segment: some Collection<UInt8>) -> String? {
    guard segment.contains(UInt8(ascii: "%")) else { return String(validating: segment, as: UTF8.self) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(segment.count)
    var iterator = segment.makeIterator()
    while let byte = iterator.next() {
        guard byte == UInt8(ascii: "%") else {
            bytes.append(byte)
            continue
        }
        guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
        bytes.append(high << 4 | low)
    }
    return String(validating: bytes, as: UTF8.self)
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}
