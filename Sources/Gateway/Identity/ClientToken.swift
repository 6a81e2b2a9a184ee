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

    /// Makes a token and stores it (a new one on the rare prefix collision: 48 random bits); the
    /// CLI's `token create` and the admin API's `POST /admin/api/tokens`.
    package static func issue(
        in store: any Store, identity: String, groups: [String], label: String?, ttl: Duration?, now: Date
    ) async throws -> (token: String, record: TokenRecord) {
        var attempts = 0
        while true {
            let made = Self.make(identity: identity, groups: groups, label: label, ttl: ttl, now: now)
            do {
                try await store.insertToken(made.record)
                return made
            } catch StoreError.duplicatePrefix where attempts < 5 {
                attempts += 1
            }
        }
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

    /// Why `identity` cannot name a token's holder, or `nil`: it must be non-empty, at most 256
    /// bytes, with no control characters (it is written into audit lines, metrics labels and the
    /// console). The same rule for `sluice token create` and the admin API.
    package static func identityProblem(_ identity: String) -> String? {
        if identity.trimmingCharacters(in: .whitespaces).isEmpty || identity.utf8.count > 256 || Self.hasControlCharacters(identity) {
            return "identity must be a non-empty string of at most 256 bytes without control characters"
        }
        return nil
    }

    /// Why `group` cannot be a group name, or `nil`: non-empty, at most 128 bytes, no commas (the
    /// store joins a token's groups with them) and no control characters.
    package static func groupProblem(_ group: String) -> String? {
        if group.isEmpty || group.utf8.count > 128 || group.contains(",") || Self.hasControlCharacters(group) {
            return "each group must be a non-empty string of at most 128 bytes without commas or control characters"
        }
        return nil
    }

    private static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// Parses a TTL such as `30d`, `12h`, `90m`, `45s` or `2w`; `nil` when malformed or not positive.
    package static func parseDuration(_ text: String) -> Duration? {
        guard let unit = text.last, let scale = Self.secondsPerUnit(unit), let value = Int64(text.dropLast()), value > 0 else { return nil }
        let (total, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : .seconds(total)
    }

    /// Seconds in one `s`, `m`, `h`, `d` or `w`.
    package static func secondsPerUnit(_ unit: Character) -> Int64? {
        switch unit {
        case "s": 1
        case "m": 60
        case "h": 3_600
        case "d": 86_400
        case "w": 7 * 86_400
        default: nil
        }
    }
}
