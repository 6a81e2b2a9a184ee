package import HummingbirdCore
import HummingbirdHTTP2
import NIOSSL

/// The certificate and key files for TLS termination, from `server.tls`.
package struct TLSFiles: Sendable, Equatable {
    /// PEM file with the certificate chain, leaf first.
    package var certificateChainPath: String
    /// PEM file with the private key. Its contents are never logged or put in an error.
    package var privateKeyPath: String

    package init(certificateChainPath: String, privateKeyPath: String) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
    }
}

/// How the server speaks on its socket: plain HTTP/1.1 (keep-alive), or with `server.tls` TLS with
/// ALPN, where clients that offer `h2` get HTTP/2 and the rest HTTP/1.1.
///
/// - Throws: ``ConfigurationError`` naming the file that cannot be read or parsed.
package func makeServerBuilder(tls: TLSFiles?) throws -> HTTPServerBuilder {
    guard let tls else { return .http1() }
    let certificates: [NIOSSLCertificate]
    do {
        certificates = try NIOSSLCertificate.fromPEMFile(tls.certificateChainPath)
    } catch {
        throw ConfigurationError(source: tls.certificateChainPath, key: "server.tls.certificateFile", problem: "not a readable PEM certificate chain")
    }
    guard !certificates.isEmpty else {
        throw ConfigurationError(source: tls.certificateChainPath, key: "server.tls.certificateFile", problem: "holds no certificate")
    }
    let key: NIOSSLPrivateKey
    do {
        key = try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem)
    } catch {
        throw ConfigurationError(source: tls.privateKeyPath, key: "server.tls.keyFile", problem: "not a readable PEM private key")
    }
    let configuration = TLSConfiguration.makeServerConfiguration(
        certificateChain: certificates.map { .certificate($0) },
        privateKey: .privateKey(key)
    )
    do {
        return try .http2Upgrade(tlsConfiguration: configuration)
    } catch {
        throw ConfigurationError(source: tls.certificateChainPath, key: "server.tls", problem: "the certificate and key cannot be used together")
    }
}
