package import Crypto
package import CryptoExtras
package import Foundation
import StreamCore

/// The JWS algorithms a gateway accepts: asymmetric only. `none` and the HMAC family are refused
/// before any key is looked at (an HMAC "signed" with a public key is the classic forgery).
package enum JSONWebAlgorithm: String, Sendable, CaseIterable {
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es384 = "ES384"
    case edDSA = "EdDSA"
}

/// One verification key of an issuer's JWKS.
package struct JSONWebKey: Sendable {
    package enum Material: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }

    package var id: String?
    /// The key's declared `alg`, when it declares one: then only that algorithm is accepted with it.
    package var algorithm: JSONWebAlgorithm?
    package var material: Material

    /// Whether a token signed with `algorithm` may be checked with this key: the key's own `alg` when
    /// it declares one, else the algorithms of its type and curve.
    package func accepts(_ algorithm: JSONWebAlgorithm) -> Bool {
        if let declared = self.algorithm { return declared == algorithm }
        switch (self.material, algorithm) {
        case (.rsa, .rs256), (.rsa, .rs384), (.rsa, .rs512), (.rsa, .ps256), (.rsa, .ps384), (.rsa, .ps512): return true
        case (.p256, .es256), (.p384, .es384), (.ed25519, .edDSA): return true
        default: return false
        }
    }

    /// Checks a JWS signature over `signingInput` (the token's `header.payload` bytes).
    package func verify(_ signature: [UInt8], over signingInput: some DataProtocol, algorithm: JSONWebAlgorithm) -> Bool {
        switch (self.material, algorithm) {
        case (.rsa(let key), .rs256):
            return key.isValidSignature(.init(rawRepresentation: signature), for: SHA256.hash(data: signingInput), padding: .insecurePKCS1v1_5)
        case (.rsa(let key), .rs384):
            return key.isValidSignature(.init(rawRepresentation: signature), for: SHA384.hash(data: signingInput), padding: .insecurePKCS1v1_5)
        case (.rsa(let key), .rs512):
            return key.isValidSignature(.init(rawRepresentation: signature), for: SHA512.hash(data: signingInput), padding: .insecurePKCS1v1_5)
        case (.rsa(let key), .ps256):
            return key.isValidSignature(.init(rawRepresentation: signature), for: SHA256.hash(data: signingInput), padding: .PSS)
        case (.rsa(let key), .ps384):
            return key.isValidSignature(.init(rawRepresentation: signature), for: SHA384.hash(data: signingInput), padding: .PSS)
        case (.rsa(let key), .ps512):
            return key.isValidSignature(.init(rawRepresentation: signature), for: SHA512.hash(data: signingInput), padding: .PSS)
        case (.p256(let key), .es256):
            // JWS carries ECDSA signatures as r ‖ s, 32 bytes each (RFC 7518 §3.4).
            guard signature.count == 64, let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: SHA256.hash(data: signingInput))
        case (.p384(let key), .es384):
            guard signature.count == 96, let parsed = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: SHA384.hash(data: signingInput))
        case (.ed25519(let key), .edDSA):
            return key.isValidSignature(signature, for: Data(signingInput))
        default:
            return false
        }
    }
}

/// A JSON Web Key Set (RFC 7517) as an issuer publishes it at its `jwks_uri`. Keys this gateway
/// cannot use (symmetric ones, encryption keys, unknown types or curves, malformed ones) are left
/// out rather than failing the whole set, since IdPs publish such keys beside signing keys.
package struct JSONWebKeySet: Sendable {
    package var keys: [JSONWebKey]

    package init(keys: [JSONWebKey]) {
        self.keys = keys
    }

    package init(json bytes: [UInt8]) throws {
        let root = try bytes.withUnsafeBytes { buffer in
            do { return try JSONParser.parse(buffer, maximumNestingDepth: 8) } catch { throw JWKSError.malformed }
        }
        guard let list = root.objectValue?.present("keys")?.arrayValue else { throw JWKSError.malformed }
        self.keys = list.compactMap { Self.key($0.objectValue) }
    }

    static func key(_ object: JSONObject?) -> JSONWebKey? {
        guard let object, let type = object.present("kty")?.stringValue else { return nil }
        if let use = object.present("use")?.stringValue, use != "sig" { return nil }
        var algorithm: JSONWebAlgorithm?
        if let declared = object.present("alg")?.stringValue {
            // A key declared for an algorithm we refuse (HS256, RSA-OAEP, …) is not usable at all.
            guard let known = JSONWebAlgorithm(rawValue: declared) else { return nil }
            algorithm = known
        }
        let id = object.present("kid")?.stringValue
        func bytes(_ name: String) -> [UInt8]? { object.present(name)?.stringValue.flatMap { Base64URL.decode($0) } }
        let material: JSONWebKey.Material
        switch type {
        case "RSA":
            guard let n = bytes("n"), let e = bytes("e"), n.count >= 256, let key = try? _RSA.Signing.PublicKey(n: n, e: e) else { return nil }
            material = .rsa(key)
        case "EC":
            guard let x = bytes("x"), let y = bytes("y") else { return nil }
            switch object.present("crv")?.stringValue {
            case "P-256":
                guard x.count == 32, y.count == 32, let key = try? P256.Signing.PublicKey(x963Representation: [0x04] + x + y) else { return nil }
                material = .p256(key)
            case "P-384":
                guard x.count == 48, y.count == 48, let key = try? P384.Signing.PublicKey(x963Representation: [0x04] + x + y) else { return nil }
                material = .p384(key)
            default: return nil
            }
        case "OKP":
            guard object.present("crv")?.stringValue == "Ed25519", let x = bytes("x"), x.count == 32,
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x)
            else { return nil }
            material = .ed25519(key)
        default:
            return nil
        }
        let key = JSONWebKey(id: id, algorithm: algorithm, material: material)
        // A declared algorithm that does not fit the key's type would never verify: drop the key.
        if let algorithm, !JSONWebKey(id: id, algorithm: nil, material: material).accepts(algorithm) { return nil }
        return key
    }

    enum JWKSError: Error { case malformed }
}

/// base64url without padding (RFC 7515 §2), strictly: other characters, padding, or a final group
/// that cannot be whole bytes are refused.
package enum Base64URL {
    package static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in text.utf8 {
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "_"): value = 63
            default: return nil
            }
            accumulator = (accumulator << 6) | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        // 6 leftover bits cannot happen in valid input; 2 or 4 must be zero padding bits.
        guard bits != 6, accumulator == 0 else { return nil }
        return output
    }

    package static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
