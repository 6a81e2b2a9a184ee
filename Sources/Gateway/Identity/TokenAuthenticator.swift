import Crypto
package import Foundation
package import Logging
import ServiceLifecycle
import Synchronization

/// Who is calling: what a valid token stands for.
package struct Caller: Sendable, Hashable {
    package var identity: String
    package var groups: [String]
    /// A Sluice token's public prefix; `oidc` for an IdP token.
    package var tokenPrefix: String
    /// The IdP that vouched for the caller; `nil` for a Sluice token.
    package var issuer: String?

    package init(identity: String, groups: [String], tokenPrefix: String, issuer: String? = nil) {
        self.identity = identity
        self.groups = groups
        self.tokenPrefix = tokenPrefix
        self.issuer = issuer
    }

    /// How the caller signed in, for the audit lines: `token` or `oidc`.
    package var authentication: String { self.issuer == nil ? "token" : "oidc" }
}

/// Why a request was not authenticated. Each case has its own message; none names another
/// identity or says whether some other token exists.
package enum AuthenticationFailure: Error, Sendable, Hashable {
    case missing
    /// An AWS SigV4 `Authorization`: a client set up for AWS credentials, not for Sluice tokens.
    case sigV4
    case malformed
    case unknown
    case expired
    case revoked
    /// The store cannot be read (a token not in memory, or the memory older than the offline grace):
    /// the token may well be valid, so this is a 503 to retry, never a 401.
    case unverifiable
    /// An IdP token (a JWT) that did not verify.
    case oidc(OIDCFailure)

    package var gatewayError: GatewayError {
        let message: String
        var code = GatewayError.Code.unauthenticated
        switch self {
        case .missing:
            message = "no API token: send your Sluice token as 'Authorization: Bearer sk-sluice-…' or 'x-api-key'"
        case .sigV4:
            message = """
                this gateway authenticates with Sluice tokens, not AWS SigV4 signatures: set AWS_BEARER_TOKEN_BEDROCK=<your sk-sluice- token>, \
                unset AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_PROFILE, and leave CLAUDE_CODE_SKIP_BEDROCK_AUTH unset
                """
        case .malformed:
            message = "the API token is not a Sluice token (they start with 'sk-sluice-')"
        case .unknown:
            message = "the API token is not valid"
        case .expired:
            message = "the API token has expired: ask for a new one"
            code = .tokenExpired
        case .revoked:
            message = "the API token has been revoked"
        case .unverifiable:
            return GatewayError(
                .storeUnavailable, "the gateway cannot check API tokens right now (its database is unreachable); try again shortly", retryAfter: 5
            )
        case .oidc(let failure):
            switch failure {
            case .malformed: message = "the IdP token is not a well-formed JWT (or one of its claims has the wrong type)"
            case .unsupportedAlgorithm:
                message = "the IdP token's signing algorithm is not accepted: only asymmetric ones the issuer's key declares (RS*, PS*, ES256, ES384, EdDSA)"
            case .wrongIssuer: message = "the IdP token comes from another issuer than the one this gateway trusts: sign in again with `sluice login`"
            case .unknownKey: message = "the IdP token is signed with a key its issuer does not publish: sign in again with `sluice login`"
            case .badSignature: message = "the IdP token's signature does not verify"
            case .wrongAudience: message = "the IdP token was not issued for this gateway (audience): sign in with `sluice login --gateway <this gateway>`"
            case .expired:
                message = "the IdP token has expired: get a fresh one (`sluice token print` refreshes it)"
                code = .tokenExpired
            case .notYetValid: message = "the IdP token is not valid yet (nbf or iat in the future): check this machine's clock"
            case .noIdentity: message = "the IdP token names no identity (neither the configured identity claim nor sub)"
            case .issuerUnavailable: message = "the gateway cannot fetch its IdP's keys right now, so it cannot check the token: try again shortly"
            }
        }
        return GatewayError(code, message)
    }

    /// A bounded label for logs and the audit line.
    package var code: String {
        switch self {
        case .missing: "token_missing"
        case .sigV4: "token_sigv4"
        case .malformed: "token_malformed"
        case .unknown: "token_unknown"
        case .expired: "token_expired"
        case .revoked: "token_revoked"
        case .unverifiable: "token_unverifiable"
        case .oidc(let failure):
            switch failure {
            case .malformed: "oidc_malformed"
            case .unsupportedAlgorithm: "oidc_algorithm"
            case .wrongIssuer: "oidc_wrong_issuer"
            case .unknownKey: "oidc_unknown_key"
            case .badSignature: "oidc_bad_signature"
            case .wrongAudience: "oidc_wrong_audience"
            case .expired: "oidc_expired"
            case .notYetValid: "oidc_not_yet_valid"
            case .noIdentity: "oidc_no_identity"
            case .issuerUnavailable: "oidc_issuer_unavailable"
            }
        }
    }
}

/// Checks client tokens against an in-memory copy of the token table.
///
/// A known token costs one SHA-256 and one dictionary lookup keyed by the digest (whose `==` is
/// swift-crypto's constant-time compare); no database round trip. The copy is reloaded when the
/// store's `tokens_changed` counter moves (polled every second by ``TokenCacheRefresher``), so a
/// revocation made with the CLI while the server runs takes effect here within about a second. An
/// unknown digest is looked up in the store once, so a token created a moment ago works at once.
package final class TokenAuthenticator: Sendable {
    private struct State {
        /// Keyed by the stored SHA-256 bytes; a hit is confirmed with the digest type's constant-time `==`.
        var tokens: [[UInt8]: TokenRecord] = [:]
        var version: Int64 = -1
        /// Last use per token prefix, written to the store in batches.
        var used: [String: Date] = [:]
        /// When the copy was last confirmed current against the store.
        var confirmed: Date?
    }

    let store: any Store
    let now: @Sendable () -> Date
    /// IdP tokens, when `oidc` is configured.
    package let oidc: OIDCVerifier?
    /// How long the copy may stand in for an unreachable store (`store.offlineGraceSeconds`).
    let offlineGrace: TimeInterval
    private let state = Mutex(State())

    package init(
        store: any Store, oidc: OIDCVerifier? = nil, offlineGrace: Duration = .seconds(600), now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.oidc = oidc
        self.offlineGrace = Double(offlineGrace.components.seconds)
        self.now = now
    }

    /// `text` without leading and trailing spaces and tabs (the only blanks an HTTP field value can
    /// hold). On the UTF-8 view: Foundation's `trimmingCharacters(in:)` went through NSString and
    /// UTF-16 and was ~60% of a known token's check.
    static func trimmingBlanks(_ text: Substring) -> Substring {
        let utf8 = text.utf8
        guard let first = utf8.firstIndex(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }),
            let last = utf8.lastIndex(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") })
        else { return "" }
        return Substring(utf8[first...last])
    }

    /// The caller a token stands for, or why it stands for none.
    package func authenticate(token: String) async -> Result<Caller, AuthenticationFailure> {
        if let oidc = self.oidc, OIDCVerifier.looksLikeJWT(token) {
            switch await oidc.verify(token) {
            case .success(let verified):
                return .success(Caller(identity: verified.identity, groups: verified.groups, tokenPrefix: "oidc", issuer: verified.issuer))
            case .failure(let failure):
                return .failure(.oidc(failure))
            }
        }
        guard ClientToken.prefix(of: token) != nil else { return .failure(.malformed) }
        let digest = ClientToken.digest(token)
        let key = Array(digest)
        let now = self.now()
        var (record, confirmed) = self.state.withLock { ($0.tokens[key], $0.confirmed) }
        // The copy answers while it is fresh; past the grace (the store unreachable that long) a
        // revocation made elsewhere may be missing from it, so it answers nothing.
        if let confirmed, now.timeIntervalSince(confirmed) > self.offlineGrace { return .failure(.unverifiable) }
        if record == nil {
            // Not in the copy: perhaps created after the last reload. Only unknown tokens pay this.
            do {
                record = try await self.store.token(digest: key)
            } catch {
                return .failure(.unverifiable)
            }
            if let found = record { self.state.withLock { $0.tokens[key] = found } }
        }
        guard let record, digest == record.digest else { return .failure(.unknown) }
        switch record.state(at: now) {
        case .revoked: return .failure(.revoked)
        case .expired: return .failure(.expired)
        case .active:
            self.state.withLock { $0.used[record.prefix] = now }
            return .success(Caller(identity: record.identity, groups: record.groups, tokenPrefix: record.prefix))
        }
    }

    /// Reloads the copy if the store's token counter moved, and writes the batched last-use times.
    package func refresh(logger: Logger) async {
        do {
            let version = try await self.store.tokensVersion()
            let checked = self.now()
            defer { self.state.withLock { $0.confirmed = checked } }
            if version != self.state.withLock({ $0.version }) {
                let tokens = try await self.store.tokens()
                var table: [[UInt8]: TokenRecord] = [:]
                for token in tokens { table[token.digest] = token }
                self.state.withLock {
                    $0.tokens = table
                    $0.version = version
                }
                logger.debug("token cache reloaded", metadata: ["tokens.count": "\(table.count)"])
            }
            try await self.flushLastUsed()
        } catch {
            logger.warning("token cache refresh failed", metadata: ["store.error": "\(error)"])
        }
    }

    package func flushLastUsed() async throws {
        let used = self.state.withLock { state in
            defer { state.used = [:] }
            return state.used
        }
        if !used.isEmpty { try await self.store.markTokensUsed(used) }
    }
}

/// Reloads the token cache every second while the server runs (and flushes last-use times).
package struct TokenCacheRefresher: Service {
    let authenticator: TokenAuthenticator
    let logger: Logger
    let interval: Duration

    package init(authenticator: TokenAuthenticator, logger: Logger, interval: Duration = .seconds(1)) {
        self.authenticator = authenticator
        self.logger = logger
        self.interval = interval
    }

    package func run() async throws {
        await self.authenticator.refresh(logger: self.logger)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                if let feed = self.authenticator.store as? any TokenChangeFeed {
                    group.addTask { await self.follow(feed) }
                }
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            try await Task.sleep(for: self.interval)
                        } catch {
                            break
                        }
                        await self.authenticator.refresh(logger: self.logger)
                    }
                }
                await group.waitForAll()
            }
        }
        try? await self.authenticator.flushLastUsed()
    }

    /// Reloads on every change the store announces; reconnects after a second when the feed ends.
    private func follow(_ feed: any TokenChangeFeed) async {
        let authenticator = self.authenticator
        let logger = self.logger
        while !Task.isCancelled {
            do {
                try await feed.followTokenChanges { await authenticator.refresh(logger: logger) }
            } catch {
                if Task.isCancelled { break }
                logger.debug("token change feed ended; polling until it is back", metadata: ["store.error": "\(type(of: error))"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
