import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// A settable clock for the gateway under test.
final class TestClock: Sendable {
    private let current: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        self.current = Mutex(start)
    }

    var now: Date { self.current.withLock { $0 } }

    func advance(by seconds: Double) {
        self.current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    var function: @Sendable () -> Date { { self.now } }
}

func errorMessage(_ body: ByteBuffer) -> String? {
    let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
    return (object?["error"] as? [String: Any])?["message"] as? String ?? object?["message"] as? String
}

@Suite(.serialized)
struct TokenAuthenticatorTests {
    static let invokePath = "/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    static let none = [("x-sluice-test-no-token", "")]
    static let invokeBody = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#

    @Test("missing, malformed, unknown, expired, revoked and SigV4 credentials: 401s with distinct messages, in each API's shape")
    func unauthorizedVariants() async throws {
        let clock = TestClock()
        try await LiveStack.run(now: clock.function) { stack in
            let expiring = try await stack.makeToken(identity: "short-lived", groups: ["admins"], ttl: .seconds(60), now: clock.now)
            let revoked = try await stack.makeToken(identity: "gone", groups: ["admins"], now: clock.now)
            _ = try await stack.store.revokeTokens(matching: "gone", at: clock.now)
            clock.advance(by: 61)
            let cases: [(String, [(String, String)])] = [
                ("missing", [("x-sluice-test-no-token", "")]),
                ("malformed", [("Authorization", "Bearer not-a-sluice-token")]),
                ("unknown", [("Authorization", "Bearer sk-sluice-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]),
                ("expired", [("Authorization", "Bearer \(expiring)")]),
                ("revoked", [("x-api-key", revoked)]),
                (
                    "sigv4",
                    [("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc")]
                ),
            ]
            var openAIMessages: Set<String> = []
            var bedrockMessages: Set<String> = []
            for (name, headers) in cases {
                let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("hi"), headers: headers)
                #expect(status == .unauthorized, "\(name)")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
                let error = try #require(object["error"] as? [String: Any], "\(name)")
                #expect(error["type"] as? String == "authentication_error")
                openAIMessages.insert(try #require(error["message"] as? String))

                let bedrock = try await stack.post(Self.invokePath, json: Self.invokeBody, headers: headers)
                #expect(bedrock.0 == .unauthorized, "\(name)")
                #expect(bedrock.1.first(name: "x-amzn-errortype") != nil)
                bedrockMessages.insert(try #require(errorMessage(bedrock.2)))
                // Nothing about other identities.
                for text in [String(buffer: body), String(buffer: bedrock.2)] {
                    #expect(!text.contains("short-lived") && !text.contains("gone") && !text.contains("test-admin"))
                }
            }
            #expect(openAIMessages.count == cases.count)
            #expect(bedrockMessages == openAIMessages)
            #expect(openAIMessages.contains { $0.contains("AWS_BEARER_TOKEN_BEDROCK") && $0.contains("CLAUDE_CODE_SKIP_BEDROCK_AUTH") })
            #expect(stack.recorder.entries.isEmpty)
            // Refusals are audited, without the token.
            #expect(stack.audit.all.filter { $0.contains("\"status\":401") }.count == cases.count * 2)
            #expect(!stack.audit.all.contains { $0.contains(expiring) || $0.contains(revoked) })
            // /healthz needs nothing.
            #expect(try await stack.get("/healthz", headers: [("x-sluice-test-no-token", "")]).0 == .ok)
            #expect(try await stack.get("/v1/models", headers: [("x-sluice-test-no-token", "")]).0 == .unauthorized)
        }
    }

    @Test("a token revoked through another connection to the file (the CLI) is refused within 2 seconds")
    func revocationWhileRunning() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("sluice.db")
        try await LiveStack.run(databasePath: path) { stack in
            let token = try await stack.makeToken(identity: "jane@corp", groups: ["admins"])
            let headers = [("Authorization", "Bearer \(token)")]
            #expect(try await stack.get("/v1/models", headers: headers).0 == .ok)
            let cli = try await SQLiteStore.open(path: path, logger: Logger(label: "sluice-test"))
            #expect(try await cli.revokeTokens(matching: "jane@corp", at: Date()).count == 1)
            try await cli.close()
            let revokedAt = ContinuousClock.now
            var status = HTTPResponseStatus.ok
            while status == .ok, ContinuousClock.now - revokedAt < .seconds(3) {
                status = try await stack.get("/v1/models", headers: headers).0
                if status == .ok { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(status == .unauthorized)
            #expect(ContinuousClock.now - revokedAt < .seconds(2))
            // The admin token still works.
            #expect(try await stack.get("/v1/models").0 == .ok)
        }
    }

    @Test("a token created a moment ago works at once (an unknown digest is looked up once)")
    func newTokenWorksAtOnce() async throws {
        try await LiveStack.run { stack in
            let token = try await stack.makeToken(identity: "new", groups: ["admins"])
            #expect(try await stack.get("/v1/models", headers: [("x-api-key", token)]).0 == .ok)
        }
    }

    @Test("inference profiles without a token: 401 unless the configuration allows anonymous listing")
    func anonymousInferenceProfiles() async throws {
        try await LiveStack.run { stack in
            let anonymous = try await stack.get("/bedrock/inference-profiles", headers: Self.none)
            #expect(anonymous.0 == .unauthorized)
            let withToken = try await stack.get("/bedrock/inference-profiles")
            #expect(withToken.0 == .ok)
        }
        try await LiveStack.run(configure: { $0.inferenceProfilesAllowAnonymous = true }) { stack in
            let list = try await stack.get("/bedrock/inference-profiles", headers: Self.none)
            #expect(list.0 == .ok)
            let one = try await stack.get("/bedrock/inference-profiles/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0", headers: Self.none)
            #expect(one.0 == .ok)
            // A wrong token is still wrong, and the runtime routes still need one.
            let wrong = try await stack.get("/bedrock/inference-profiles", headers: [("x-api-key", "sk-sluice-nope-nope-nope")])
            #expect(wrong.0 == .unauthorized)
            let invoke = try await stack.post(Self.invokePath, json: Self.invokeBody, headers: Self.none)
            #expect(invoke.0 == .unauthorized)
        }
    }
}
