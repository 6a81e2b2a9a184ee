package import Crypto
package import Foundation

/// Client tokens: `sk-sluice-` followed by 32 random bytes in unpadded base64url (43 characters).
package enum ClientToken {
    package static let scheme = "sk-sluice-"
    /// Characters of the random part shown in listings and logs: 48 bits, enough to tell tokens
    /// apart, useless for guessing the other 208.
    package static let prefixLength = 8

    /// A new token and the record to store for it (the token itself is not in the record).
    package static func make(
        identity: String, groups: [String], label: String?, ttl: Duration?, now: Date
    ) -> (token: String, record: TokenRecord) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let token = Self.scheme + Self.base64URL(bytes)
        let expires = ttl.map { now.addingTimeInterval(Double($0.components.seconds)) }
        let record = TokenRecord(
            prefix: Self.prefix(of: token) ?? "", digest: Self.digestBytes(token), identity: identity, groups: groups, label: label,
            createdAt: now, expiresAt: expires
        )
        return (token, record)
    }

    /// The public prefix of a well-formed token, `nil` for anything else.
    package static func prefix(of token: String) -> String? {
        guard token.hasPrefix(Self.scheme) else { return nil }
        let rest = token.dropFirst(Self.scheme.count)
        guard rest.count >= Self.prefixLength else { return nil }
        return String(rest.prefix(Self.prefixLength))
    }

    package static func digest(_ token: some StringProtocol) -> SHA256.Digest {
        SHA256.hash(data: Array(token.utf8))
    }

    package static func digestBytes(_ token: some StringProtocol) -> [UInt8] {
        Array(Self.digest(token))
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Parses a TTL such as `30d`, `12h`, `90m`, `45s` or `2w`; `nil` when malformed or not positive.
    package static func parseDuration(_ text: String) -> Duration? {
        guard let unit = text.last, let value = Int64(text.dropLast()), value > 0 else { return nil }
        let seconds: Int64
        switch unit {
        case "s": seconds = 1
        case "m": seconds = 60
        case "h": seconds = 3600
        case "d": seconds = 86_400
        case "w": seconds = 7 * 86_400
        default: return nil
        }
        let (total, overflow) = value.multipliedReportingOverflow(by: seconds)
        return overflow ? nil : .seconds(total)
    }
}
