package import HummingbirdCore
import HummingbirdHTTP2
import NIOCore
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
package func makeServerBuilder(tls: TLSFiles?, clientIdle: Duration = .seconds(30)) throws -> HTTPServerBuilder {
    let http1 = makeHTTP1Configuration(clientIdle: clientIdle)
    guard let tls else { return .http1(configuration: http1) }
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
        return try .http2Upgrade(tlsConfiguration: configuration, configuration: .init(idleTimeout: clientIdle, streamConfiguration: http1))
    } catch {
        throw ConfigurationError(source: tls.certificateChainPath, key: "server.tls", problem: "the certificate and key cannot be used together")
    }
}

/// HTTP/1.1 settings against hostile clients: a connection that sends nothing for `clientIdle`
/// (a slowloris trickling its headers, an idle keep-alive) is closed; headers are bounded to 256
/// fields and 64 KiB in all (real clients send a few dozen and a few KiB; Claude Code about 20).
package func makeHTTP1Configuration(clientIdle: Duration) -> HTTP1Channel.Configuration {
    HTTP1Channel.Configuration(
        idleTimeout: TimeAmount(clientIdle),
        httpDecoderConfiguration: .init(maxHeaderFieldSize: 64 * 1024, maxHeaderListSize: 64 * 1024, maxHeaderFieldCount: 256)
    )
}
