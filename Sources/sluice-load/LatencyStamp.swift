/// Finds the simulator's latency stamp `⟦t=<CLOCK_MONOTONIC ns>⟧` in the bytes of one text delta.
///
/// The stamp is written right before the text, inside a JSON string; `⟦` and `⟧` need no escaping
/// in JSON, so the bytes are the same on the Bedrock route (raw frame payload) and the OpenAI route
/// (the gateway's SSE chunk).
enum LatencyStamp {
    enum Result: Equatable {
        /// No stamp opener in the bytes.
        case missing
        /// An opener not followed by digits and the closer, or more than one stamp.
        case malformed
        case found(nanoseconds: UInt64)
    }

    /// `⟦t=` in UTF-8.
    private static let opener: [UInt8] = [0xE2, 0x9F, 0xA6, UInt8(ascii: "t"), UInt8(ascii: "=")]
    /// `⟧` in UTF-8.
    private static let closer: [UInt8] = [0xE2, 0x9F, 0xA7]

    static func scan(_ bytes: UnsafeRawBufferPointer) -> Result {
        guard let start = Self.firstIndex(of: Self.opener, in: bytes, from: 0) else { return .missing }
        var index = start + Self.opener.count
        var value: UInt64 = 0
        var digits = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            // 19 digits always fit: CLOCK_MONOTONIC is far below 10^19 ns (317 years).
            guard digits < 19 else { return .malformed }
            value = value * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
            digits += 1
            index += 1
        }
        guard digits > 0, index + Self.closer.count <= bytes.count,
            bytes[index] == Self.closer[0], bytes[index + 1] == Self.closer[1], bytes[index + 2] == Self.closer[2]
        else { return .malformed }
        // One delta, one stamp: a second one means deltas were merged and latencies would be lost.
        if Self.firstIndex(of: Self.opener, in: bytes, from: index + Self.closer.count) != nil { return .malformed }
        return .found(nanoseconds: value)
    }

    /// Where `needle` first occurs in `haystack` at or after `start`.
    static func firstIndex(of needle: [UInt8], in haystack: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        var index = start
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first {
                var matched = 1
                while matched < needle.count, haystack[index + matched] == needle[matched] { matched += 1 }
                if matched == needle.count { return index }
            }
            index += 1
        }
        return nil
    }

    /// Whether `needle` occurs in `haystack`.
    static func contains(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Bool {
        Self.firstIndex(of: needle, in: haystack, from: 0) != nil
    }
}
