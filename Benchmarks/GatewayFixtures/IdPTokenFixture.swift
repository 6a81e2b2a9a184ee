import Crypto
import CryptoExtras
import Foundation
import Gateway

/// IdP token checks on the request path (README, "Sign-in with your IdP"): an RS256 and an ES256
/// token signed here, the issuer's keys already fetched (as after start-up), so what is measured is
/// the parse, the signature check and the claims, or the lookup of a token verified before.
public final class IdPTokenFixture: Sendable {
    let verifier: OIDCVerifier
    let rs256: String
    let es256: String

    public init() throws {
        let issuer = "https://idp.example.com"
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let ec = P256.Signing.PrivateKey()
        let primitives = try rsa.publicKey.getKeyPrimitives()
        let point = ec.publicKey.x963Representation.dropFirst()
        let jwks = """
            {"keys":[{"kty":"RSA","kid":"r","alg":"RS256","n":"\(Base64URL.encode(primitives.modulus))","e":"\(Base64URL.encode(primitives.publicExponent))"},
            {"kty":"EC","kid":"e","crv":"P-256","x":"\(Base64URL.encode(point.prefix(32)))","y":"\(Base64URL.encode(point.suffix(32)))"}]}
            """
        self.verifier = OIDCVerifier(
            settings: OIDCSettings(issuer: issuer, audience: "sluice"), keys: try JSONWebKeySet(json: Array(jwks.utf8)), fetch: nil
        )
        // Claims the size a real IdP sends (Entra ID and Okta tokens run to 1-2 KB with groups).
        let groups = (0..<20).map { "\"group-\($0)\"" }.joined(separator: ",")
        let claims = """
            {"iss":"\(issuer)","aud":"sluice","sub":"00u1a2b3c4d5e6f7g8h9","email":"bench@corp.example","groups":[\(groups)],\
            "iat":\(Int(Date().timeIntervalSince1970)),"exp":\(Int(Date().timeIntervalSince1970) + 86_400),"scp":["openid","email","profile"]}
            """
        func token(_ header: String, sign: (Data) throws -> [UInt8]) throws -> String {
            let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(claims.utf8))
            return input + "." + Base64URL.encode(try sign(Data(input.utf8)))
        }
        self.rs256 = try token(#"{"alg":"RS256","kid":"r","typ":"JWT"}"#) {
            Array(try rsa.signature(for: SHA256.hash(data: $0), padding: .insecurePKCS1v1_5).rawRepresentation)
        }
        self.es256 = try token(#"{"alg":"ES256","kid":"e","typ":"JWT"}"#) { Array(try ec.signature(for: SHA256.hash(data: $0)).rawRepresentation) }
    }

    /// One full check of the RS256 token (parse, signature, claims); throws if it is refused.
    public func verifyRS256() async throws { try Self.expect(await self.verifier.verify(self.rs256, remembering: false)) }

    /// One full check of the ES256 token.
    public func verifyES256() async throws { try Self.expect(await self.verifier.verify(self.es256, remembering: false)) }

    /// The RS256 token again, answered from the verified tokens.
    public func verifyRemembered() async throws { try Self.expect(await self.verifier.verify(self.rs256)) }

    static func expect(_ result: Result<OIDCIdentity, OIDCFailure>) throws {
        if case .failure(let failure) = result { throw IdPTokenFixtureFailure(description: "refused: \(failure)") }
    }
}

struct IdPTokenFixtureFailure: Error, CustomStringConvertible {
    var description: String
}
