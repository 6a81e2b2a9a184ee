import Crypto
package import Foundation
package import Logging
import StreamCore
import Synchronization

/// The `oidc` configuration: which issuer's tokens the gateway accepts, for which audience, and
/// which claims carry the identity and the groups.
package struct OIDCSettings: Sendable, Equatable {
    /// Compared with the token's `iss` exactly, and the base of the discovery document's URL.
    package var issuer: String
    /// Must be the token's `aud`, or one of them.
    package var audience: String
    package var groupsClaim = "groups"
    /// The identity; `sub` when the token lacks it.
    package var identityClaim = "email"
    /// The public client `sluice login` uses for the device flow (`GET /.well-known/sluice`).
    package var clientID: String?
    package var scopes: [String] = ["openid", "email", "profile", "offline_access"]

    package init(issuer: String, audience: String) {
        self.issuer = issuer
        self.audience = audience
    }
}

/// Why an IdP token was refused. Each is its own 401 with a message saying what to do.
package enum OIDCFailure: Error, Sendable, Hashable {
    /// Not a compact JWS, bad base64url, bad or duplicate-keyed JSON, too large, a `crit` header, or
    /// claims of the wrong type.
    case malformed
    /// `none`, the HMAC family, an unknown `alg`, or one the key is not for.
    case unsupportedAlgorithm
    case wrongIssuer
    case unknownKey
    case badSignature
    case wrongAudience
    case expired
    case notYetValid
    /// Neither the identity claim nor `sub`.
    case noIdentity
    /// The issuer's keys could not be fetched, so nothing can be verified.
    case issuerUnavailable
}

/// What a verified IdP token stands for.
package struct OIDCIdentity: Sendable, Hashable {
    package var identity: String
    package var groups: [String]
    package var issuer: String
    package var expiresAt: Date
}

/// Verifies IdP access tokens (JWTs) against the issuer's published keys.
///
/// The keys come from the discovery document's `jwks_uri`, fetched at start and kept. A token whose
/// `kid` is not among them makes one refetch (the IdP rotated its keys: the new ones work at once),
/// and further unknown keys make no other fetch for 30 s, so a stream of made-up `kid`s cannot turn
/// the gateway against the IdP. Verified tokens are remembered (by their SHA-256) until they expire,
/// so a token's signature is checked once, not per request.
package final class OIDCVerifier: Sendable {
    package let settings: OIDCSettings
    /// Allowed clock difference for `exp`, `nbf` and `iat`.
    static let leeway: TimeInterval = 60
    /// The least time between two fetches caused by unknown keys.
    static let refetchInterval: Duration = .seconds(30)
    static let maximumTokenBytes = 16 * 1024
    static let maximumCachedTokens = 10_000

    private struct State {
        var keys: JSONWebKeySet?
        var jwksURI: String?
        /// When an unknown key last caused a fetch.
        var lastMissFetch: ContinuousClock.Instant?
        var fetching: Task<JSONWebKeySet?, Never>?
        var verified: [SHA256Digest: OIDCIdentity] = [:]
    }

    private let state = Mutex(State())
    private let now: @Sendable () -> Date
    private let logger: Logger
    /// Reads a URL's body (the discovery document, the JWKS); `nil`: only the keys given (tests and
    /// benchmarks without an issuer). The HTTP side is the caller's (``JSONDocument/get(_:)``), so
    /// identity code stays free of it.
    private let fetch: (@Sendable (String) async throws -> [UInt8])?

    package init(
        settings: OIDCSettings, keys: JSONWebKeySet? = nil, fetch: (@Sendable (String) async throws -> [UInt8])?,
        logger: Logger = Logger(label: "sluice.oidc"), now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.settings = settings
        self.now = now
        self.logger = logger
        self.fetch = fetch
        self.state.withLock { $0.keys = keys }
    }

    /// Whether a bearer value is a JWT rather than a Sluice token: three base64url parts, the first
    /// a JSON object (`eyJ` is `{"` encoded).
    package static func looksLikeJWT(_ token: String) -> Bool {
        token.hasPrefix("eyJ") && token.utf8.count(where: { $0 == UInt8(ascii: ".") }) == 2
    }

    /// Fetches the keys now (start-up); failures are logged and retried on the first token.
    package func start() async {
        _ = await self.fetchKeys(cause: "start-up")
    }

    /// The identity a token stands for, or why it stands for none.
    ///
    /// - Parameter remembering: look the token up among the verified ones and remember it once
    ///   verified (always, but in the benchmark of the signature check itself).
    package func verify(_ token: String, remembering: Bool = true) async -> Result<OIDCIdentity, OIDCFailure> {
        guard token.utf8.count <= Self.maximumTokenBytes else { return .failure(.malformed) }
        let digest = SHA256.hash(data: Array(token.utf8))
        let now = self.now()
        if remembering, let cached = self.state.withLock({ $0.verified[digest] }) {
            if cached.expiresAt.timeIntervalSince(now) + Self.leeway > 0 { return .success(cached) }
            return .failure(.expired)
        }
        let parsed: ParsedToken
        switch ParsedToken.parse(token) {
        case .success(let token): parsed = token
        case .failure(let failure): return .failure(failure)
        }
        guard parsed.claims.present("iss")?.stringValue == self.settings.issuer else { return .failure(.wrongIssuer) }
        var key = self.key(for: parsed)
        if key == nil {
            guard let keys = await self.refetchForUnknownKey() else {
                return .failure(self.state.withLock { $0.keys == nil } ? .issuerUnavailable : .unknownKey)
            }
            key = Self.key(in: keys, for: parsed)
        }
        guard let key else { return .failure(.unknownKey) }
        guard key.accepts(parsed.algorithm) else { return .failure(.unsupportedAlgorithm) }
        guard key.verify(parsed.signature, over: parsed.signingInput, algorithm: parsed.algorithm) else { return .failure(.badSignature) }
        let result = self.check(parsed.claims, now: now)
        if remembering, case .success(let identity) = result {
            self.state.withLock { state in
                if state.verified.count >= Self.maximumCachedTokens {
                    state.verified = state.verified.filter { $0.value.expiresAt > now }
                    if state.verified.count >= Self.maximumCachedTokens { state.verified.removeAll(keepingCapacity: true) }
                }
                state.verified[digest] = identity
            }
        }
        return result
    }

    /// The registered claims, then the identity and groups.
    func check(_ claims: JSONObject, now: Date) -> Result<OIDCIdentity, OIDCFailure> {
        let audiences: [String]
        switch claims.present("aud") {
        case .string(let one)?: audiences = [one]
        case .array(let many)?: audiences = many.compactMap(\.stringValue)
        default: return .failure(.wrongAudience)
        }
        guard audiences.contains(self.settings.audience) else { return .failure(.wrongAudience) }
        // exp is required: a token that never expires could not be taken back.
        guard let expiry = claims.present("exp") else { return .failure(.malformed) }
        guard let exp = expiry.doubleValue, exp.isFinite else { return .failure(.malformed) }
        let time = now.timeIntervalSince1970
        guard time < exp + Self.leeway else { return .failure(.expired) }
        if let notBefore = claims.present("nbf") {
            guard let nbf = notBefore.doubleValue, nbf.isFinite else { return .failure(.malformed) }
            guard time >= nbf - Self.leeway else { return .failure(.notYetValid) }
        }
        if let issuedAt = claims.present("iat") {
            guard let iat = issuedAt.doubleValue, iat.isFinite else { return .failure(.malformed) }
            guard iat <= time + Self.leeway else { return .failure(.notYetValid) }
        }
        let identity: String
        if let value = claims.present(self.settings.identityClaim) {
            guard let text = value.stringValue, !text.isEmpty else { return .failure(.malformed) }
            identity = text
        } else if let subject = claims.present("sub")?.stringValue, !subject.isEmpty {
            identity = subject
        } else {
            return .failure(.noIdentity)
        }
        var groups: [String] = []
        switch claims.present(self.settings.groupsClaim) {
        case nil: break
        case .string(let text)?: groups = text.split(separator: " ").map(String.init)
        case .array(let list)?:
            for element in list {
                guard let group = element.stringValue else { return .failure(.malformed) }
                groups.append(group)
            }
        default: return .failure(.malformed)
        }
        return .success(OIDCIdentity(identity: identity, groups: groups, issuer: self.settings.issuer, expiresAt: Date(timeIntervalSince1970: exp)))
    }

    // MARK: Keys

    private func key(for token: ParsedToken) -> JSONWebKey? {
        guard let keys = self.state.withLock({ $0.keys }) else { return nil }
        return Self.key(in: keys, for: token)
    }

    /// The key a token names (`kid`); without one, the only key that fits its algorithm.
    static func key(in keys: JSONWebKeySet, for token: ParsedToken) -> JSONWebKey? {
        if let id = token.keyID { return keys.keys.first { $0.id == id } }
        let fitting = keys.keys.filter { $0.accepts(token.algorithm) }
        return fitting.count == 1 ? fitting[0] : nil
    }

    /// One refetch for an unknown key, unless one happened in the last 30 s (then the keys as they are).
    private func refetchForUnknownKey() async -> JSONWebKeySet? {
        guard self.fetch != nil else { return self.state.withLock { $0.keys } }
        let allowed = self.state.withLock { state -> Bool in
            // Without any keys yet (the issuer was down at start-up), every miss may try again.
            guard state.keys != nil else { return true }
            if let last = state.lastMissFetch, ContinuousClock.now - last < Self.refetchInterval { return false }
            state.lastMissFetch = .now
            return true
        }
        guard allowed else { return self.state.withLock { $0.keys } }
        return await self.fetchKeys(cause: "unknown key")
    }

    /// Discovery (once) and the JWKS; one fetch at a time, shared by the requests that wait for it.
    private func fetchKeys(cause: String) async -> JSONWebKeySet? {
        let task = self.state.withLock { state -> Task<JSONWebKeySet?, Never> in
            if let running = state.fetching { return running }
            let made = Task { await self.download(cause: cause) }
            state.fetching = made
            return made
        }
        let keys = await task.value
        self.state.withLock { state in
            if state.fetching == task { state.fetching = nil }
        }
        return keys
    }

    private func download(cause: String) async -> JSONWebKeySet? {
        guard let fetch = self.fetch else { return self.state.withLock { $0.keys } }
        do {
            var jwksURI = self.state.withLock { $0.jwksURI }
            if jwksURI == nil {
                var base = self.settings.issuer
                while base.hasSuffix("/") { base.removeLast() }
                let discovery = try JSONDocument.object(try await fetch(base + "/.well-known/openid-configuration"))
                guard discovery.present("issuer")?.stringValue == self.settings.issuer else {
                    throw JSONDocument.Failure("the discovery document names another issuer")
                }
                guard let uri = discovery.present("jwks_uri")?.stringValue else { throw JSONDocument.Failure("the discovery document has no jwks_uri") }
                jwksURI = uri
                self.state.withLock { $0.jwksURI = uri }
            }
            guard let jwksURI else { return nil }
            let keys = try JSONWebKeySet(json: try await fetch(jwksURI))
            self.state.withLock { $0.keys = keys }
            self.logger.info("IdP keys fetched", metadata: ["oidc.issuer": "\(self.settings.issuer)", "oidc.keys": "\(keys.keys.count)", "cause": "\(cause)"])
            return keys
        } catch {
            self.logger.warning("IdP keys could not be fetched", metadata: ["oidc.issuer": "\(self.settings.issuer)", "error": "\(error)"])
            return self.state.withLock { $0.keys }
        }
    }
}

/// A compact JWS split and decoded, not yet verified.
struct ParsedToken {
    var algorithm: JSONWebAlgorithm
    var keyID: String?
    var claims: JSONObject
    var signature: [UInt8]
    /// `header.payload` as sent: what the signature covers.
    var signingInput: [UInt8]

    static let maximumHeaderBytes = 2 * 1024

    static func parse(_ token: String) -> Result<ParsedToken, OIDCFailure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].utf8.count <= Self.maximumHeaderBytes * 4 / 3 + 4,
            let headerBytes = Base64URL.decode(parts[0]), let header = Self.object(headerBytes, depth: 4)
        else { return .failure(.malformed) }
        guard let name = header.present("alg")?.stringValue else { return .failure(.malformed) }
        // `none` (with its empty signature) and HS* are named as what they are before anything else.
        guard let algorithm = JSONWebAlgorithm(rawValue: name) else { return .failure(.unsupportedAlgorithm) }
        guard !parts[1].isEmpty, !parts[2].isEmpty, let payloadBytes = Base64URL.decode(parts[1]), let signature = Base64URL.decode(parts[2]),
            let claims = Self.object(payloadBytes, depth: 8)
        else { return .failure(.malformed) }
        // No JWS extension is understood here, so a token that makes one critical is refused (RFC 7515 §4.1.11).
        guard header["crit"] == nil else { return .failure(.malformed) }
        var keyID: String?
        if let kid = header.present("kid") {
            guard let text = kid.stringValue else { return .failure(.malformed) }
            keyID = text
        }
        let signingInput = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        return .success(ParsedToken(algorithm: algorithm, keyID: keyID, claims: claims, signature: signature, signingInput: signingInput))
    }

    /// A JSON object without duplicate member names (which parsers resolve differently: a token must
    /// mean one thing).
    static func object(_ bytes: [UInt8], depth: Int) -> JSONObject? {
        guard let parsed = try? bytes.withUnsafeBytes({ try JSONParser.parse($0, maximumNestingDepth: depth) }), let object = parsed.objectValue else {
            return nil
        }
        var names = Set<String>()
        for member in object.members where !names.insert(member.key).inserted { return nil }
        return object
    }
}
