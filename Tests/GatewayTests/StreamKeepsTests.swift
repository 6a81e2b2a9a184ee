import Foundation
import HTTPTypes
import NIOCore
import Testing

@testable import Gateway

/// What a streamed answer keeps of its request for the stream's whole life: no copy of a large
/// prompt, whatever the API shape (a coding agent's request is hundreds of KiB, and its streams last
/// minutes).
@Suite
struct StreamKeepsTests {
    static let prompt = String(repeating: "a long prompt line. ", count: 8 * 1024)  // 160 KiB
    static let caller = Caller(identity: "jane", groups: ["admins"], tokenPrefix: "aaaaaaaa")

    /// The bytes of every `ByteBuffer` storage reachable from `value` (fields, optionals, arrays,
    /// enum payloads): a field added later that holds the body is counted too.
    static func bufferBytes(_ value: Any) -> Int {
        if let buffer = value as? ByteBuffer { return buffer.storageCapacity }
        return Mirror(reflecting: value).children.reduce(0) { $0 + Self.bufferBytes($1.value) }
    }

    static func head(_ path: String) -> HTTPRequest {
        HTTPRequest(method: .post, scheme: "http", authority: "127.0.0.1", path: path)
    }

    /// Maps `body` with `shape`, checks the mapped request holds the prompt (so the measure sees it),
    /// and returns what a stream of it keeps.
    static func kept<Shape: APIShape>(_ shape: Shape, path: String, body: String) throws -> (mapped: Int, kept: Int) {
        let settings = GatewaySettings(configuration: GatewayConfiguration())
        let mapped = try shape.map(ByteBuffer(string: body), head: Self.head(path), caller: Self.caller, settings: settings)
        #expect(mapped.operation.isStreaming)
        return (Self.bufferBytes(mapped.mapped), Self.bufferBytes(shape.keptWhileStreaming(mapped.mapped)))
    }

    @Test("OpenAI chat, Anthropic Messages, /bedrock and Responses streams keep no copy of the request's body")
    func noBodyKept() async throws {
        let escaped = Self.prompt
        let invoke = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"\#(escaped)"}]}"#
        let cases: [(String, (mapped: Int, kept: Int))] = [
            ("chat", try Self.kept(OpenAIChatShape(), path: "/v1/chat/completions", body: chatRequest(Self.prompt))),
            (
                "messages",
                try Self.kept(
                    AnthropicMessagesShape(region: "us-east-1"), path: "/v1/messages",
                    body: #"{"model":"claude-sonnet-4-5-20250929","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"\#(escaped)"}]}"#
                )
            ),
            (
                "bedrock",
                try Self.kept(BedrockShape(), path: "/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream", body: invoke)
            ),
            (
                "responses",
                try await withTemporaryStore { store, _ in
                    try Self.kept(
                        ResponsesShape(seal: ReasoningSeal(), memory: ResponseMemory(store: store)), path: "/v1/responses",
                        body: #"{"model":"claude-sonnet","stream":true,"input":"\#(escaped)"}"#
                    )
                }
            ),
        ]
        for (shape, bytes) in cases {
            #expect(bytes.mapped >= Self.prompt.utf8.count, "\(shape): the mapped request should hold the prompt (\(bytes.mapped) bytes)")
            #expect(bytes.kept < 4096, "\(shape): a stream keeps \(bytes.kept) bytes of buffers")
        }
    }
}
