import Crypto
import Foundation
package import StreamCore

/// Seals the Responses API's reasoning items (`encrypted_content`: the reasoning text and Bedrock's
/// signature) with AES-GCM under a server key, so a client can hand them back in a later request
/// (multi-turn tool use with thinking and `store: false`) but can neither read nor forge them.
package struct ReasoningSeal: ResponsesReasoningSealer, ResponsesReasoningOpener {
    private let key: SymmetricKey

    /// - Parameter secret: `SLUICE_RESPONSES_KEY` (hashed into the key); `nil` makes a random key for
    ///   this process, so blobs do not survive a restart or cross replicas.
    package init(secret: String? = nil) {
        if let secret {
            self.key = SymmetricKey(data: SHA256.hash(data: Data("sluice-responses-reasoning\u{0}\(secret)".utf8)))
        } else {
            self.key = SymmetricKey(size: .bits256)
        }
    }

    package func seal(_ reasoning: SealedReasoning) -> String {
        // Sealing with a fresh random nonce cannot fail for a 256-bit key.
        guard let sealed = try? AES.GCM.seal(reasoning.plaintext, using: self.key), let combined = sealed.combined else { return "" }
        return "sluice1." + combined.base64EncodedString()
    }

    package func open(_ encryptedContent: String) -> SealedReasoning? {
        guard encryptedContent.hasPrefix("sluice1."), encryptedContent.utf8.count < 4 * 1024 * 1024,
            let data = Data(base64Encoded: String(encryptedContent.dropFirst("sluice1.".count))),
            let box = try? AES.GCM.SealedBox(combined: data),
            let plaintext = try? AES.GCM.open(box, using: self.key)
        else { return nil }
        return SealedReasoning(plaintext: plaintext)
    }
}
