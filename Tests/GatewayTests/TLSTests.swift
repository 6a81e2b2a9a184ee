import AsyncHTTPClient
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing

/// TLS termination: with `server.tls`, Sluice serves HTTPS and speaks HTTP/2 to clients that offer it.
@Suite(.serialized)
struct TLSTests {
    /// A self-signed certificate for 127.0.0.1, made with the openssl CLI in a temporary folder.
    static func makeCertificate() throws -> TLSFiles {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", certificate,
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "openssl could not make a certificate")
        return TLSFiles(certificateChainPath: certificate, privateKeyPath: key)
    }

    @Test("HTTPS with HTTP/2 by ALPN: a streamed chat arrives as SSE chunks")
    func http2OverTLS() async throws {
        try await Self.streamedChat(over: .automatic, expecting: .http2)
    }

    /// The relay writes HTTP/1.1 chunks beneath the response encoder: over TLS they must go through
    /// the TLS handler, which sits before it.
    @Test("HTTPS with HTTP/1.1: a streamed chat arrives as SSE chunks")
    func http1OverTLS() async throws {
        try await Self.streamedChat(over: .http1Only, expecting: .http1_1)
    }

    static func streamedChat(over version: HTTPClient.Configuration.HTTPVersion, expecting: HTTPVersion) async throws {
        let files = try Self.makeCertificate()
        try await LiveStack.run(configure: { $0.server.tls = files }) { stack in
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            var configuration = HTTPClient.Configuration()
            configuration.tlsConfiguration = tls
            configuration.httpVersion = version
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            do {
                var request = HTTPClientRequest(url: "https://127.0.0.1:\(stack.gatewayPort)/v1/chat/completions")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                stack.authorize(&request.headers, unless: [])
                request.body = .bytes(ByteBuffer(string: chatRequest("Hello over TLS [[sim chunks=40]]")))
                let response = try await client.execute(request, timeout: .seconds(30))
                #expect(response.status == .ok)
                #expect(response.version == expecting)
                let chat = try StreamedChat(try await response.body.collect(upTo: 1 << 20))
                #expect(chat.done)
                #expect(!chat.content.isEmpty)
                try await client.shutdown()
            } catch {
                try? await client.shutdown()
                throw error
            }
        }
    }

    @Test("unreadable TLS files stop start-up naming the key, never the key's contents")
    func badFiles() throws {
        let files = try Self.makeCertificate()
        #expect(throws: ConfigurationError.self) {
            try makeServerBuilder(tls: TLSFiles(certificateChainPath: "/nonexistent.pem", privateKeyPath: files.privateKeyPath))
        }
        let error = try #require(throws: ConfigurationError.self) {
            try makeServerBuilder(tls: TLSFiles(certificateChainPath: files.certificateChainPath, privateKeyPath: files.certificateChainPath))
        }
        #expect(error.key == "server.tls.keyFile")
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration.load(file: nil, environment: [:], overrides: .init(tlsCertificateFile: files.certificateChainPath))
        }
    }
}
