import AsyncHTTPClient
import BedrockSimulator
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
    static func makeCertificate() async throws -> TLSFiles {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let status = try await SluiceProcess.offPool {
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
            return process.terminationStatus
        }
        try #require(status == 0, "openssl could not make a certificate")
        return TLSFiles(certificateChainPath: certificate, privateKeyPath: key)
    }

    /// Removes the folder ``makeCertificate()`` made.
    static func remove(_ files: TLSFiles) {
        try? FileManager.default.removeItem(at: URL(fileURLWithPath: files.certificateChainPath).deletingLastPathComponent())
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
        let files = try await Self.makeCertificate()
        defer { Self.remove(files) }
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

    /// Hummingbird's HTTP/1.1 channel (TLS) drops the request's version: `HTTP1Compatibility` puts
    /// back what an HTTP/1.0 client and an `Expect` need. curl, as a user would run it.
    @Test("HTTPS with HTTP/1.0: the answer is HTTP/1.0, unchunked, ended by the close; Expect: 100-continue over HTTP/1.1 gets its 100, and a declared length over the limit a 413 without it")
    func legacyClientsOverTLS() async throws {
        let files = try await Self.makeCertificate()
        defer { Self.remove(files) }
        try await LiveStack.run(configure: { $0.server.tls = files; $0.server.maxBodyBytes = 65536 }) { stack in
            let url = "https://127.0.0.1:\(stack.gatewayPort)/v1/chat/completions"
            func curl(_ arguments: [String], body: String) async throws -> (status: Int32, output: String, trace: String) {
                let directory = try TemporaryDirectory()
                defer { directory.remove() }
                let file = directory.path("body.json")
                try Data(body.utf8).write(to: URL(fileURLWithPath: file))
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                process.arguments = ["-sSk", "--max-time", "20", "-H", "Authorization: Bearer \(stack.token)", "-H", "Content-Type: application/json",
                                     "--data-binary", "@\(file)"] + arguments + [url]
                let output = Pipe()
                let trace = Pipe()
                process.standardOutput = output
                process.standardError = trace
                try process.run()
                let (out, err) = await withCheckedContinuation { continuation in
                    DispatchQueue.global().async {
                        let out = output.fileHandleForReading.readDataToEndOfFile()
                        let err = trace.fileHandleForReading.readDataToEndOfFile()
                        process.waitUntilExit()
                        continuation.resume(returning: (out, err))
                    }
                }
                return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
            }

            // HTTP/1.0 reads an unframed body to the close: without it, curl waits out its time.
            let old = try await curl(["--http1.0", "-i"], body: chatRequest("hi [[sim chunks=3]]"))
            #expect(old.status == 0, "\(old.trace)")
            let head = old.output.components(separatedBy: "\r\n\r\n")[0].lowercased()
            #expect(head.hasPrefix("http/1.0 200"), "\(head)")
            #expect(!head.contains("transfer-encoding"))
            #expect(old.output.hasSuffix("data: [DONE]\n\n"))

            // Expect: 100-continue, asked for explicitly (curl asks by itself only past 1 MiB).
            let expecting = try await curl(["--http1.1", "-v", "-H", "Expect: 100-continue"], body: chatRequest("hi", stream: false))
            #expect(expecting.status == 0)
            #expect(expecting.trace.contains("< HTTP/1.1 100 Continue"), "\(expecting.trace)")
            #expect(expecting.output.contains("chat.completion"))

            let large = try await curl(["--http1.1", "-v", "-H", "Expect: 100-continue"], body: String(repeating: " ", count: 100_000))
            #expect(large.trace.contains("< HTTP/1.1 413"), "\(large.trace)")
            #expect(!large.trace.contains("100 Continue"))

            // Headers over the parser's limits: a 431 that says so (it was an empty 400).
            let huge = try await curl(["--http1.1", "-i", "-H", "X-Big: " + String(repeating: "a", count: 70_000)], body: "{}")
            #expect(huge.output.hasPrefix("HTTP/1.1 431"), "\(huge.output.prefix(300)) \(huge.trace)")
            #expect(huge.output.contains(#""code":"request_headers_too_large""#))
        }
    }

    /// An `https` upstream: a second gateway whose upstream is the first one's `/bedrock`
    /// passthrough over TLS (a proxy behind a path prefix, with a certificate of its own authority).
    @Test("an https upstream: TLS with the certificate checked against upstream.caFile (two requests); untrusted, 502 upstream_unreachable")
    func httpsUpstream() async throws {
        let files = try await Self.makeCertificate()
        defer { Self.remove(files) }
        try await LiveStack.run(configure: { $0.server.tls = files }) { front in
            for trusted in [true, false] {
                try await LiveStack.run(
                    authentication: .apiKey(front.token),
                    configure: { configuration in
                        configuration.upstream.endpoint = URL(string: "https://127.0.0.1:\(front.gatewayPort)/bedrock")
                        if trusted { configuration.upstream.caFile = files.certificateChainPath }
                    }
                ) { stack in
                    for attempt in 0..<2 {
                        let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("Hello through two gateways \(attempt) [[sim chunks=30]]"))
                        if trusted {
                            #expect(status == .ok)
                            let chat = try StreamedChat(body)
                            #expect(chat.done)
                            #expect(chat.error == nil)
                            #expect(!chat.content.isEmpty)
                        } else {
                            #expect(status == .badGateway)
                            let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
                            #expect((object?["error"] as? [String: Any])?["code"] as? String == "upstream_unreachable")
                        }
                    }
                }
            }
            // The front gateway saw both trusted requests (the untrusted ones never got past TLS).
            #expect(front.recorder.entries.count == 2)
        }
    }

    @Test("upstream.caFile must be a readable PEM file of certificates")
    func caFileChecked() async throws {
        let files = try await Self.makeCertificate()
        defer { Self.remove(files) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-ca-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func load(_ caFile: String) throws -> GatewayConfiguration {
            let path = directory.appendingPathComponent("config.json").path
            try Data(#"{"upstream": {"endpoint": "https://proxy.example", "caFile": "\#(caFile)"}}"#.utf8).write(to: URL(fileURLWithPath: path))
            return try GatewayConfiguration.load(file: path, environment: [:], overrides: .init())
        }
        #expect(try load(files.certificateChainPath).upstream.caFile == files.certificateChainPath)
        let missing = try #require(throws: ConfigurationError.self) { try load("/nonexistent.pem") }
        #expect(missing.key == "upstream.caFile")
        // A key is not a certificate.
        #expect(throws: ConfigurationError.self) { try load(files.privateKeyPath) }
    }

    @Test("unreadable TLS files stop start-up naming the key, never the key's contents")
    func badFiles() async throws {
        let files = try await Self.makeCertificate()
        defer { Self.remove(files) }
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
