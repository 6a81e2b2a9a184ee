import Crypto
import CryptoExtras
import Foundation
import Gateway
import Testing

/// IdP tokens at the gateway (README, "Sign-in with your IdP"): keys made here, tokens signed here,
/// the verifier given the key set directly (the e2e tests fetch it from a stub issuer over HTTP).
@Suite
struct OIDCTests {
    static let issuer = "https://idp.example.com/realms/corp"
    static let rsa: _RSA.Signing.PrivateKey = {
        do { return try _RSA.Signing.PrivateKey(keySize: .bits2048) } catch { fatalError("RSA key generation failed: \(error)") }
    }()
    static let p256 = P256.Signing.PrivateKey()
    static let p384 = P384.Signing.PrivateKey()
    static let ed25519 = Curve25519.Signing.PrivateKey()

    static var keySet: JSONWebKeySet {
        get throws {
            let parameters = try Self.rsa.publicKey.getKeyPrimitives()
            let p256 = Self.p256.publicKey.x963Representation.dropFirst()
            let p384 = Self.p384.publicKey.x963Representation.dropFirst()
            let json = """
                {"keys":[
                 {"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
                 {"kty":"RSA","kid":"rsa-1","use":"sig","n":"\(Base64URL.encode(parameters.modulus))","e":"\(Base64URL.encode(parameters.publicExponent))"},
                 {"kty":"EC","kid":"ec-256","alg":"ES256","crv":"P-256","x":"\(Base64URL.encode(p256.prefix(32)))","y":"\(Base64URL.encode(p256.suffix(32)))"},
                 {"kty":"EC","kid":"ec-384","crv":"P-384","x":"\(Base64URL.encode(p384.prefix(48)))","y":"\(Base64URL.encode(p384.suffix(48)))"},
                 {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"\(Base64URL.encode(Self.ed25519.publicKey.rawRepresentation))"},
                 {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}
                ]}
                """
            return try JSONWebKeySet(json: Array(json.utf8))
        }
    }

    static func claims(
        identity: String = "ana@corp.example", groups: String = #"["engineering","oncall"]"#, audience: String = #""sluice""#,
        issuer: String = Self.issuer, expiresIn: Double = 600, extra: String = ""
    ) -> String {
        let now = Date().timeIntervalSince1970
        return #"{"iss":"\#(issuer)","sub":"u-123","aud":\#(audience),"email":"\#(identity)","groups":\#(groups),"iat":\#(Int(now)),"exp":\#(Int(now + expiresIn))\#(extra)}"#
    }

    /// A compact JWS: the header as given, the claims, and the signature of `algorithm` made with
    /// the matching test key.
    static func token(_ claims: String = Self.claims(), algorithm: String = "RS256", kid: String? = "rsa-1", header: String? = nil) throws -> String {
        let headerJSON = header ?? (#"{"alg":"\#(algorithm)","typ":"JWT""# + (kid.map { #","kid":"\#($0)""# } ?? "") + "}")
        let input = Base64URL.encode(Array(headerJSON.utf8)) + "." + Base64URL.encode(Array(claims.utf8))
        let data = Data(input.utf8)
        let signature: [UInt8]
        switch algorithm {
        case "RS256": signature = Array(try Self.rsa.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
        case "RS512": signature = Array(try Self.rsa.signature(for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
        case "PS256": signature = Array(try Self.rsa.signature(for: SHA256.hash(data: data), padding: .PSS).rawRepresentation)
        case "ES256": signature = Array(try Self.p256.signature(for: SHA256.hash(data: data)).rawRepresentation)
        case "ES384": signature = Array(try Self.p384.signature(for: SHA384.hash(data: data)).rawRepresentation)
        case "EdDSA": signature = Array(try Self.ed25519.signature(for: data))
        case "HS256":
            // The classic forgery: HMAC keyed with the RSA public key's DER bytes.
            let key = SymmetricKey(data: Self.rsa.publicKey.derRepresentation)
            signature = Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
        default: signature = []
        }
        return input + "." + Base64URL.encode(signature)
    }

    static func verifier(now: @escaping @Sendable () -> Date = { Date() }) throws -> OIDCVerifier {
        var settings = OIDCSettings(issuer: Self.issuer, audience: "sluice")
        settings.groupsClaim = "groups"
        return OIDCVerifier(settings: settings, keys: try Self.keySet, fetch: nil, now: now)
    }

    @Test("every asymmetric algorithm verifies with its key; identity and groups come from the configured claims")
    func algorithms() async throws {
        let verifier = try Self.verifier()
        for (algorithm, kid) in [("RS256", "rsa-1"), ("RS512", "rsa-1"), ("PS256", "rsa-1"), ("ES256", "ec-256"), ("ES384", "ec-384"), ("EdDSA", "ed")] {
            let result = await verifier.verify(try Self.token(algorithm: algorithm, kid: kid))
            #expect(try result.get().identity == "ana@corp.example", "\(algorithm)")
            #expect(try result.get().groups == ["engineering", "oncall"])
            #expect(try result.get().issuer == Self.issuer)
        }
        // Without a kid: the one key that fits the algorithm.
        #expect((try? await verifier.verify(try Self.token(algorithm: "EdDSA", kid: nil)).get()) != nil)
        // Groups as a space-separated string (some IdPs' `scope`-like claims); identity from `sub`
        // when the identity claim is missing; several audiences.
        let spaced = try Self.token(#"{"iss":"\#(Self.issuer)","sub":"u-9","aud":["other","sluice"],"groups":"a b","exp":\#(Int(Date().timeIntervalSince1970 + 60))}"#)
        let identity = try await verifier.verify(spaced).get()
        #expect(identity.identity == "u-9")
        #expect(identity.groups == ["a", "b"])
    }

    @Test("each refusal is its own: expired, not yet valid, wrong audience, wrong issuer, forged signature, none, HS256 with the public key, unknown kid, alg not the key's")
    func refusals() async throws {
        let verifier = try Self.verifier()
        func failure(_ token: String) async -> OIDCFailure? {
            if case .failure(let failure) = await verifier.verify(token) { return failure }
            return nil
        }
        #expect(await failure(try Self.token(Self.claims(expiresIn: -120))) == .expired)
        // Within the 60 s leeway: still good.
        #expect(await failure(try Self.token(Self.claims(expiresIn: -30))) == nil)
        #expect(await failure(try Self.token(Self.claims(extra: #","nbf":\#(Int(Date().timeIntervalSince1970 + 600))"#))) == .notYetValid)
        #expect(await failure(try Self.token(Self.claims(audience: #""someone-else""#))) == .wrongAudience)
        #expect(await failure(try Self.token(Self.claims(audience: "[]"))) == .wrongAudience)
        #expect(await failure(try Self.token(Self.claims(issuer: "https://evil.example.com"))) == .wrongIssuer)
        #expect(await failure(try Self.token(Self.claims(issuer: Self.issuer + "/"))) == .wrongIssuer)
        // A signature over other claims.
        let good = try Self.token()
        let other = try Self.token(Self.claims(identity: "mallory@corp.example"))
        let parts = good.split(separator: ".")
        let forged = parts[0] + "." + other.split(separator: ".")[1] + "." + parts[2]
        #expect(await failure(String(forged)) == .badSignature)
        // alg none, unsigned.
        let none = Base64URL.encode(Array(#"{"alg":"none"}"#.utf8)) + "." + Base64URL.encode(Array(Self.claims().utf8)) + "."
        #expect(await failure(none) == .unsupportedAlgorithm)
        #expect(await failure(try Self.token(algorithm: "HS256")) == .unsupportedAlgorithm)
        // An RS256 token that names the EC key, and an ES256 token naming the RSA key.
        #expect(await failure(try Self.token(algorithm: "RS256", kid: "ec-256")) == .unsupportedAlgorithm)
        #expect(await failure(try Self.token(algorithm: "ES256", kid: "rsa-1")) == .unsupportedAlgorithm)
        // The HMAC and encryption keys of the set are not usable at all.
        #expect(await failure(try Self.token(algorithm: "RS256", kid: "hmac")) == .unknownKey)
        #expect(await failure(try Self.token(algorithm: "RS256", kid: "enc")) == .unknownKey)
        // No identity at all.
        let anonymous = #"{"iss":"\#(Self.issuer)","aud":"sluice","exp":\#(Int(Date().timeIntervalSince1970 + 60))}"#
        #expect(await failure(try Self.token(anonymous)) == .noIdentity)
        // exp is required, and claims must have their types.
        #expect(await failure(try Self.token(#"{"iss":"\#(Self.issuer)","aud":"sluice","sub":"x"}"#)) == .malformed)
        #expect(await failure(try Self.token(Self.claims(groups: #"[1,2]"#))) == .malformed)
        #expect(await failure(try Self.token(header: #"{"alg":"RS256","kid":"rsa-1","crit":["exp"]}"#)) == .malformed)
        // Duplicate claim names mean two different things to two parsers: refused.
        #expect(await failure(try Self.token(#"{"iss":"\#(Self.issuer)","iss":"x","aud":"sluice","sub":"s","exp":9999999999}"#)) == .malformed)
    }

    @Test("a verified token is remembered until it expires; then it is refused without another signature check")
    func cache() async throws {
        let clock = TestClock(Date())
        let verifier = try Self.verifier(now: { clock.now })
        let token = try Self.token(Self.claims(expiresIn: 100))
        #expect((try? await verifier.verify(token).get()) != nil)
        clock.advance(by: 120)
        #expect((try? await verifier.verify(token).get()) != nil, "within exp + 60 s leeway")
        clock.advance(by: 60)
        if case .failure(let failure) = await verifier.verify(token) { #expect(failure == .expired) } else { Issue.record("an expired cached token was accepted") }
    }

    @Test("malformed JWTs of every kind are refused quickly, never crash (property test over generated garbage)")
    func malformed() async throws {
        let verifier = try Self.verifier()
        let good = try Self.token()
        var generator = SplitMix(seed: 0x5EED)
        var inputs = [
            "", ".", "..", "...", "eyJ", "eyJ.eyJ.", "eyJhbGciOiJSUzI1NiJ9..sig", good + ".", "." + good,
            String(good.dropLast()), good.replacingOccurrences(of: "-", with: "+"), good + "=",
            // A header of 100 KB, JSON nested 1,000 deep, wrong types everywhere.
            Base64URL.encode(Array(("{\"alg\":\"RS256\",\"x\":\"" + String(repeating: "a", count: 100_000) + "\"}").utf8)) + ".e30.c2ln",
            Base64URL.encode(Array(#"{"alg":"RS256"}"#.utf8)) + "." + Base64URL.encode(Array((String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)).utf8)) + ".c2ln",
            Base64URL.encode(Array(#"{"alg":7}"#.utf8)) + ".e30.c2ln", Base64URL.encode(Array(#"{"alg":"RS256","kid":[1]}"#.utf8)) + ".e30.c2ln",
            Base64URL.encode(Array(#"["alg"]"#.utf8)) + ".e30.c2ln",
            try Self.token(#"{"iss":\#(Self.issuer.count),"aud":"sluice","exp":"soon"}"#),
            try Self.token(#"{"iss":"\#(Self.issuer)","aud":{"x":1},"exp":1e400}"#),
        ]
        // Random mutations of a good token: flipped, dropped and inserted characters.
        let alphabet = Array("ABCxyz019-_.=+/ {}\"")
        for _ in 0..<2_000 {
            var characters = Array(good)
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                let index = Int(generator.next() % UInt64(characters.count))
                switch generator.next() % 3 {
                case 0: characters[index] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                case 1: characters.remove(at: index)
                default: characters.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: index)
                }
            }
            inputs.append(String(characters))
        }
        var accepted = 0
        for input in inputs {
            if case .success = await verifier.verify(input) { accepted += 1 }
        }
        // A mutation may land in the signature's padding bits and still decode to the same bytes only
        // when it changes nothing: anything accepted must be the good token itself.
        #expect(accepted == inputs.filter { $0 == good }.count)
        #expect(OIDCVerifier.looksLikeJWT(good))
        #expect(!OIDCVerifier.looksLikeJWT("sk-sluice-abc"))
    }

    @Test("config: oidc is read; the issuer must be https (http only on loopback); a policy can require an IdP sign-in")
    func configuration() throws {
        func load(_ json: String) throws -> GatewayConfiguration {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-oidc-\(UUID().uuidString).json").path
            try Data(json.utf8).write(to: URL(fileURLWithPath: path))
            defer { try? FileManager.default.removeItem(atPath: path) }
            return try GatewayConfiguration.load(file: path, environment: [:])
        }
        let configuration = try load(
            #"{"oidc": {"issuer": "http://127.0.0.1:18300", "audience": "sluice", "groupsClaim": "roles", "clientId": "cli"}, "policies": [{"source": "group:engineering", "require": "oidc"}]}"#
        )
        #expect(configuration.oidc?.issuer == "http://127.0.0.1:18300")
        #expect(configuration.oidc?.groupsClaim == "roles")
        #expect(configuration.oidc?.identityClaim == "email")
        #expect(configuration.oidc?.clientID == "cli")
        #expect(configuration.policies.first?.requiresOIDC == true)
        for (json, key) in [
            (#"{"oidc": {"issuer": "http://idp.example.com", "audience": "sluice"}}"#, "oidc.issuer"),
            (#"{"oidc": {"issuer": "https://idp.example.com"}}"#, "oidc.audience"),
            (#"{"oidc": {"issuer": "https://idp.example.com", "audience": "a", "groups": "x"}}"#, "oidc.groups"),
            (#"{"policies": [{"source": "*", "require": "sso"}]}"#, "policies[0].require"),
        ] {
            #expect(throws: ConfigurationError.self) { try load(json) }
            do { _ = try load(json) } catch let error as ConfigurationError { #expect(error.key == key, "\(json)") }
        }
        // The rule applies to IdP callers only.
        let policies = PolicySet(policies: configuration.policies, catalog: ModelCatalog())
        let idp = Caller(identity: "ana", groups: ["engineering"], tokenPrefix: "oidc", issuer: "http://127.0.0.1:18300")
        let token = Caller(identity: "ana", groups: ["engineering"], tokenPrefix: "sk-abcde")
        #expect(policies.admits(idp))
        #expect(!policies.admits(token))
    }

    @Test("base64url is strict: no padding, no standard-alphabet characters, no stray bits")
    func base64url() {
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode("YQ") == Array("a".utf8))
        #expect(Base64URL.decode("YWI") == Array("ab".utf8))
        #expect(Base64URL.decode("YWJj") == Array("abc".utf8))
        #expect(Base64URL.decode("YQ==") == nil)
        #expect(Base64URL.decode("Y") == nil)
        #expect(Base64URL.decode("YR") == nil, "non-zero padding bits")
        #expect(Base64URL.decode("+/") == nil)
        #expect(Base64URL.decode("-_8") == [0xFB, 0xFF])
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
    }
}

/// A small deterministic generator for the property tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

