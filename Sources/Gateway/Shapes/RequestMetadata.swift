import NIOCore
import StreamCore

/// Bedrock request metadata for cost allocation: the caller's identity and first group go upstream
/// with every call (Converse `requestMetadata`; on invoke routes `X-Amzn-Bedrock-Request-Metadata`),
/// so Bedrock's own usage reports can be split by them.
enum RequestMetadata {
    /// The caller's pairs, with characters Bedrock does not accept in tag values replaced by `_`.
    static func pairs(for caller: Caller) -> [(String, String)] {
        var pairs = [("sluice-identity", Self.sanitizeTag(caller.identity))]
        if let group = caller.groups.first { pairs.append(("sluice-group", Self.sanitizeTag(group))) }
        return pairs
    }

    /// The metadata as a JSON object (for Converse's `requestMetadata` and the invoke header).
    ///
    /// - Parameter client: the client's own `X-Amzn-Bedrock-Request-Metadata`, if it sent one: its
    ///   string pairs are kept (Bedrock allows 16 in all, so at most 14 of the client's; keys and
    ///   values sanitised like ours), and the gateway's keys win, so a caller cannot claim another
    ///   identity in the cost reports.
    static func json(for caller: Caller, merging client: String? = nil) -> String {
        let own = Self.pairs(for: caller)
        var pairs: [(String, String)] = []
        if let client, let object = (try? JSONParser.parse(client, maximumNestingDepth: 8))?.objectValue {
            var seen = Set<String>()
            // Later duplicates win, as in JSON.parse; keys in sorted order, as before.
            let members = object.members.reversed().filter { seen.insert($0.key).inserted }.sorted { $0.key < $1.key }
            for (key, value) in members {
                guard pairs.count < 16 - own.count, let value = value.stringValue else { continue }
                let safeKey = String(Self.sanitizeTag(key).prefix(256))
                guard !safeKey.isEmpty, !own.contains(where: { $0.0 == safeKey }) else { continue }
                pairs.append((safeKey, Self.sanitizeTag(value)))
            }
        }
        pairs += own
        var buffer = ByteBuffer()
        buffer.writeStaticString("{")
        for (index, (key, value)) in pairs.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            buffer.writeJSONString(key)
            buffer.writeStaticString(":")
            buffer.writeJSONString(value)
        }
        buffer.writeStaticString("}")
        return String(buffer: buffer)
    }

    /// Adds `"requestMetadata":{…}` to a Converse request body (a JSON object a mapper wrote).
    static func add(for caller: Caller, to body: inout ByteBuffer) {
        var view = body.readableBytesView
        while let last = view.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\n") { view = view.dropLast() }
        guard view.last == UInt8(ascii: "}") else { return }
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + 96)
        let content = view.dropLast()
        out.writeBytes(content)
        let isEmptyObject = content.allSatisfy { $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") }
        if !isEmptyObject { out.writeStaticString(",") }
        out.writeStaticString("\"requestMetadata\":")
        out.writeString(Self.json(for: caller))
        out.writeStaticString("}")
        body = out
    }

    /// Bedrock's tag alphabet: `[a-zA-Z0-9\s:_@$#=/+,.-]{0,256}`.
    private static let tagCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :_@$#=/+,.-")

    static func sanitizeTag(_ text: String) -> String {
        String(String(text.map { Self.tagCharacters.contains($0) ? $0 : "_" }).prefix(256))
    }
}
