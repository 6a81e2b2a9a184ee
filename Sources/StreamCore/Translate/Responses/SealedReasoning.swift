/// A Bedrock reasoning block carried through a Responses client inside a reasoning item's
/// `encrypted_content`, so a stateless gateway gets it back on the next turn.
///
/// Anthropic models on Bedrock refuse a tool-use turn with thinking unless the assistant turn being
/// answered starts with its signed thinking block, unchanged. Responses clients with `store: false`
/// (Codex CLI) keep that block for us as an opaque string: Sluice seals the block (text and
/// signature, or redacted data) when the block ends, and opens it when the item comes back in `input`.
///
/// StreamCore has no cryptography: the gateway implements ``ResponsesReasoningSealer`` and
/// ``ResponsesReasoningOpener`` (AES-GCM under a server key, so the client can neither read nor forge
/// a block), typically over ``plaintext`` and ``init(plaintext:)``.
package enum SealedReasoning: Sendable, Hashable {
    /// `reasoningContent.reasoningText`: the model's reasoning and Bedrock's signature over it.
    case signed(text: String, signature: String)
    /// `reasoningContent.redactedContent`: reasoning Anthropic encrypted itself, forwarded unchanged.
    case redacted(data: String)

    private static let signedTag: UInt8 = 1
    private static let redactedTag: UInt8 = 2

    /// A compact binary form for the gateway's cipher: a tag byte, then for `signed` the text's UTF-8
    /// length as 4 bytes big-endian, the text and the signature; for `redacted` the data.
    package var plaintext: [UInt8] {
        switch self {
        case .signed(let text, let signature):
            var bytes: [UInt8] = [Self.signedTag]
            let count = UInt32(truncatingIfNeeded: text.utf8.count)
            bytes.reserveCapacity(5 + text.utf8.count + signature.utf8.count)
            bytes.append(contentsOf: [UInt8(count >> 24), UInt8(count >> 16 & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count & 0xFF)])
            bytes.append(contentsOf: text.utf8)
            bytes.append(contentsOf: signature.utf8)
            return bytes
        case .redacted(let data):
            return [Self.redactedTag] + Array(data.utf8)
        }
    }

    /// Reads ``plaintext``; nil for anything else (a wrong tag, a length past the end, invalid UTF-8).
    package init?(plaintext bytes: some Collection<UInt8>) {
        let bytes = Array(bytes)
        guard let tag = bytes.first else { return nil }
        switch tag {
        case Self.signedTag:
            guard bytes.count >= 5 else { return nil }
            let count = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
            guard count <= bytes.count - 5,
                let text = String(validating: bytes[5..<(5 + count)], as: UTF8.self),
                let signature = String(validating: bytes[(5 + count)...], as: UTF8.self)
            else { return nil }
            self = .signed(text: text, signature: signature)
        case Self.redactedTag:
            guard let data = String(validating: bytes[1...], as: UTF8.self) else { return nil }
            self = .redacted(data: data)
        default:
            return nil
        }
    }

    /// The Converse content block to replay.
    var block: ConverseBlock {
        switch self {
        case .signed(let text, let signature): .reasoning(text: text, signature: signature)
        case .redacted(let data): .redactedReasoning(data)
        }
    }
}

/// Seals a reasoning block into a reasoning item's `encrypted_content` (implemented by the gateway).
///
/// Called once per reasoning block, when the block ends, never per delta.
package protocol ResponsesReasoningSealer: Sendable {
    func seal(_ reasoning: SealedReasoning) -> String
}

/// Opens what ``ResponsesReasoningSealer`` made; nil when the string was not made by this gateway's
/// key or was altered (the request is then refused, naming the item).
package protocol ResponsesReasoningOpener: Sendable {
    func open(_ encryptedContent: String) -> SealedReasoning?
}
