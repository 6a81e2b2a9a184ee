package import NIOCore
import StreamCore

/// The key a request is routed by, so that the requests of one conversation reach the upstream that
/// holds its prompt cache. First found: the client's session (`X-Claude-Code-Session-Id`), the key
/// the API gives for it (OpenAI `prompt_cache_key` or `user`, Anthropic `metadata.user_id`), else
/// the caller's identity with a hash of the conversation's start: the system prompt and the first
/// message's first text, which stay the same turn after turn while cache markers move.
package enum AffinityKey {
    package static func make(session: String?, declared: String?, identity: String, upstreamBody: ByteBuffer) -> String {
        if let session, !session.isEmpty { return "session:" + session }
        if let declared, !declared.isEmpty { return "key:" + declared }
        let hash = upstreamBody.withUnsafeReadableBytes { Self.conversationHash($0) }
        return "conversation:" + identity + ":" + String(hash, radix: 16)
    }

    /// FNV-1a over the raw bytes of the top-level `system` value and of the first text of
    /// `messages[0]` (a member `text`, or `content` when it is a string), in whichever order they come.
    /// Malformed or missing parts hash as empty: the key then depends on the identity alone.
    static func conversationHash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ range: Range<Int>) {
            for index in range { hash = (hash ^ UInt64(bytes[index])) &* 0x0000_0100_0000_01b3 }
            hash = (hash ^ 0xff) &* 0x0000_0100_0000_01b3
        }
        var scanner = JSONScanner(bytes)
        var system: Range<Int>?
        var firstText: Range<Int>?
        do {
            try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                if system == nil, scanner.bytes(in: key, equal: "system") {
                    scanner.skipWhitespace()
                    let start = scanner.index
                    try scanner.skipValue()
                    system = start..<scanner.index
                } else if firstText == nil, scanner.bytes(in: key, equal: "messages") {
                    try scanner.consume(UInt8(ascii: "["))
                    guard scanner.peek() != UInt8(ascii: "]") else {
                        try scanner.consume(UInt8(ascii: "]"))
                        return
                    }
                    firstText = try Self.firstText(&scanner, depth: 0)
                    // The rest of the array: skipped element by element.
                    while scanner.peek() != UInt8(ascii: "]") {
                        // At the end of the bytes this throws: the body is cut.
                        try scanner.consume(UInt8(ascii: ","))
                        try scanner.skipValue()
                    }
                    try scanner.consume(UInt8(ascii: "]"))
                } else {
                    try scanner.skipValue()
                }
            }
        } catch {
            // What was found before the failure still counts.
        }
        if let system { mix(system) }
        if let firstText { mix(firstText) }
        return hash
    }

    /// Consumes one value and returns the range of the first string found in it under a `text` key
    /// (or a `content` key holding a string), depth first.
    private static func firstText(_ scanner: inout JSONScanner, depth: Int) throws(JSONScanner.Failure) -> Range<Int>? {
        guard depth < 8 else {
            try scanner.skipValue()
            return nil
        }
        switch scanner.peek() {
        case UInt8(ascii: "{"):
            var found: Range<Int>?
            try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                if found == nil, scanner.bytes(in: key, equal: "text") || scanner.bytes(in: key, equal: "content"),
                    scanner.peek() == UInt8(ascii: "\"")
                {
                    found = try scanner.readString()
                } else if found == nil {
                    found = try Self.firstText(&scanner, depth: depth + 1)
                } else {
                    try scanner.skipValue()
                }
            }
            return found
        case UInt8(ascii: "["):
            try scanner.consume(UInt8(ascii: "["))
            var found: Range<Int>?
            if scanner.peek() == UInt8(ascii: "]") {
                try scanner.consume(UInt8(ascii: "]"))
                return nil
            }
            while true {
                if found == nil {
                    found = try Self.firstText(&scanner, depth: depth + 1)
                } else {
                    try scanner.skipValue()
                }
                scanner.skipWhitespace()
                if scanner.peek() == UInt8(ascii: "]") {
                    try scanner.consume(UInt8(ascii: "]"))
                    return found
                }
                try scanner.consume(UInt8(ascii: ","))
            }
        default:
            try scanner.skipValue()
            return nil
        }
    }
}
