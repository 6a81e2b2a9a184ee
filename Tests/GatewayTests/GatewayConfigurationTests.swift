import Foundation
import StreamCore
import Testing

@testable import Gateway

struct GatewayConfigurationTests {
    private func write(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-config-\(UUID().uuidString).json").path
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("defaults, then the file, then the environment, then flags")
    func layering() throws {
        let file = try self.write(#"""
            {"server":{"host":"0.0.0.0","port":9001},"upstream":{"region":"eu-west-1","apiKey":"file-key"},
             "models":{"default":"eu.anthropic.claude-sonnet-4-5-20250929-v1:0","aliases":{"fast":"eu.anthropic.claude-haiku-4-5-20251001-v1:0"}},
             "timeouts":{"firstByteSeconds":5,"idleSeconds":2.5}}
            """#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let configuration = try GatewayConfiguration.load(
            file: file,
            environment: ["SLUICE_PORT": "9002", "AWS_BEARER_TOKEN_BEDROCK": "env-key", "AWS_REGION": "us-west-2"],
            overrides: .init(host: "127.0.0.1")
        )
        #expect(configuration.server.host == "127.0.0.1")
        #expect(configuration.server.port == 9002)
        #expect(configuration.upstream.region == "us-west-2")
        #expect(configuration.upstream.apiKey == "file-key")
        #expect(configuration.models.resolve("fast") == "eu.anthropic.claude-haiku-4-5-20251001-v1:0")
        #expect(configuration.models.resolve(nil) == "eu.anthropic.claude-sonnet-4-5-20250929-v1:0")
        #expect(configuration.models.resolve("us.meta.llama3-3-70b-instruct-v1:0") == "us.meta.llama3-3-70b-instruct-v1:0")
        #expect(configuration.timeouts.firstByte == .seconds(5))
        #expect(configuration.timeouts.idle == .milliseconds(2500))
        #expect(!String(describing: configuration.upstream).contains("file-key"))
    }

    @Test("models.betas: add and replace entries, in the file's order, change what the beta filter keeps")
    func betaRules() throws {
        let file = try self.write(#"""
            {"models":{"betas":[
              {"model":"*sonnet-4-5*","add":["effort-2025-11-24"]},
              {"model":"*haiku-4-5*","replace":["claude-code-20250219"]}]}}
            """#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let configuration = try GatewayConfiguration.load(file: file, environment: [:])
        #expect(configuration.betaRules.count == 2)
        let policy = GatewaySettings(configuration: configuration).betaPolicy
        let sent = ["interleaved-thinking-2025-05-14", "effort-2025-11-24", "claude-code-20250219"]
        let sonnet = policy.filter(sent, modelID: "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        #expect(sonnet.kept.contains("effort-2025-11-24") && sonnet.kept.contains("interleaved-thinking-2025-05-14"))
        let haiku = policy.filter(sent, modelID: "us.anthropic.claude-haiku-4-5-20251001-v1:0")
        #expect(haiku.kept == ["claude-code-20250219"])
        let builtIn = GatewaySettings(configuration: GatewayConfiguration()).betaPolicy
        #expect(!builtIn.filter(sent, modelID: "us.anthropic.claude-sonnet-4-5-20250929-v1:0").kept.contains("effort-2025-11-24"))
    }

    @Test("a bad file names the file, the key and the problem", arguments: [
        (#"{"server":{"port":"80"}}"#, "server.port", "integer"),
        (#"{"server":{"prot":80}}"#, "server.prot", "unknown key"),
        (#"{"upstream":{"endpoint":"ftp://x"}}"#, "upstream.endpoint", "http"),
        (#"{"upstream":{"simulator":1}}"#, "upstream.simulator", "true or false"),
        (#"{"models":{"aliases":{"a":3}}}"#, "models.aliases.a", "model id"),
        (#"{"timeouts":{"idleSeconds":-1}}"#, "timeouts.idleSeconds", "seconds"),
        (#"{"models":{"allowed":["x",""]}}"#, "models.allowed[1]", "non-empty"),
        (#"{"models":{"betas":{"x":1}}}"#, "models.betas", "list"),
        (#"{"models":{"betas":[{"add":["a"]}]}}"#, "models.betas[0].model", "glob"),
        (#"{"models":{"betas":[{"model":"*","add":["a"],"replace":[]}]}}"#, "models.betas[0]", "exactly one"),
        (#"{"models":{"betas":[{"model":"*","keep":["a"]}]}}"#, "models.betas[0].keep", "unknown key"),
        (#"[1]"#, "(root)", "object"),
        (#"{"server":"#, "-", "JSON"),
        (#"{"admin":{"groups":"admins"}}"#, "admin.groups", "list"),
        (#"{"admin":{"groups":[""]}}"#, "admin.groups[0]", "non-empty"),
        (#"{"admin":{"group":["ops"]}}"#, "admin.group", "unknown key"),
        (#"{"store":{"onUnavailable":"maybe"}}"#, "store.onUnavailable", "'closed' or 'open'"),
        (#"{"store":{"url":"mysql://app@db/sluice"}}"#, "store.url", "neither a file path nor a postgres:// URL"),
        (#"{"store":{"path":"/a.db","url":"postgres://app@db/s"}}"#, "store", "both"),
    ])
    func badFile(json: String, key: String, problem: String) throws {
        let file = try self.write(json)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let error = try #require(throws: ConfigurationError.self) {
            try GatewayConfiguration.load(file: file, environment: [:])
        }
        #expect(error.source == file)
        #expect(error.key == key)
        #expect(error.description.contains(problem))
    }

    @Test("admin.groups: who may use the console; the default is admins")
    func adminGroups() throws {
        #expect(try GatewayConfiguration.load(file: nil, environment: [:]).adminGroups == ["admins"])
        let file = try self.write(#"{"admin":{"groups":["ops","sre"]}}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try GatewayConfiguration.load(file: file, environment: [:]).adminGroups == ["ops", "sre"])
    }

    @Test("bad environment values are refused with their variable name")
    func badEnvironment() {
        #expect(throws: ConfigurationError(source: "environment", key: "SLUICE_PORT", problem: "must be an integer in 0...65535, got 'http'")) {
            try GatewayConfiguration.load(file: nil, environment: ["SLUICE_PORT": "http"])
        }
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration.load(file: nil, environment: ["SLUICE_SIMULATOR": "maybe"])
        }
    }

    @Test("the simulator is chosen only without credentials and without an endpoint")
    func simulatorChoice() throws {
        // No HOME: no credentials file is read.
        func wants(_ environment: [String: String], _ overrides: GatewayConfiguration.Overrides = .init()) throws -> Bool {
            try UpstreamPlan.wantsSimulator(try GatewayConfiguration.load(file: nil, environment: environment, overrides: overrides), environment: environment)
        }
        #expect(try wants([:]))
        #expect(try !wants(["AWS_BEARER_TOKEN_BEDROCK": "k"]))
        #expect(try !wants(["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret"]))
        #expect(try !wants([:], .init(upstream: "http://127.0.0.1:9")))
        #expect(try wants(["AWS_BEARER_TOKEN_BEDROCK": "k", "SLUICE_SIMULATOR": "1"]))
        let environment = ["AWS_BEARER_TOKEN_BEDROCK": "k", "AWS_REGION": "eu-central-1"]
        let plan = try UpstreamPlan(configuration: try GatewayConfiguration.load(file: nil, environment: environment), environment: environment, simulatorEndpoint: nil)
        #expect(plan.endpoint.absoluteString == "https://bedrock-runtime.eu-central-1.amazonaws.com")
        let signed = ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-42", "AWS_REGION": "eu-west-1"]
        let sigV4 = try UpstreamPlan(configuration: try GatewayConfiguration.load(file: nil, environment: signed), environment: signed, simulatorEndpoint: nil)
        #expect("\(sigV4.authentication)".hasPrefix("SigV4"))
        #expect(!"\(sigV4.authentication)".contains("s3cr3t-value-42"))
        let bad = ["AWS_BEARER_TOKEN_BEDROCK": "k", "AWS_REGION": "x/../y"]
        #expect(throws: ConfigurationError.self) {
            try UpstreamPlan(configuration: try GatewayConfiguration.load(file: nil, environment: bad), environment: bad, simulatorEndpoint: nil)
        }
    }
}

struct BedrockPathTests {
    @Test("model ids arrive raw, %3A- or %2F-encoded, with // after the prefix", arguments: [
        ("/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", BedrockOperation.invokeWithResponseStream),
        ("/bedrock/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens", "anthropic.claude-sonnet-4-5-20250929-v1:0", .countTokens),
        ("/bedrock//model/eu.anthropic.claude-haiku-4-5-20251001-v1:0/invoke", "eu.anthropic.claude-haiku-4-5-20251001-v1:0", .invoke),
        ("/bedrock/model/arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile%2Fabc123xyz/converse-stream", "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123xyz", .converseStream),
        ("/bedrock/model/m/converse", "m", .converse),
    ])
    func modelPaths(path: String, id: String, operation: BedrockOperation) {
        #expect(BedrockTarget(path: path) == .model(id: id, operation: operation))
    }

    @Test("control-plane paths and refusals")
    func otherPaths() {
        #expect(BedrockTarget(path: "/bedrock/inference-profiles") == .listInferenceProfiles)
        #expect(BedrockTarget(path: "/bedrock//inference-profiles") == .listInferenceProfiles)
        #expect(BedrockTarget(path: "/bedrock/inference-profiles/arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Aapplication-inference-profile%2Fabc") == .inferenceProfile(id: "arn:aws:bedrock:eu-west-1:1:application-inference-profile/abc"))
        #expect(BedrockTarget(path: "/bedrock/model/m/delete") == nil)
        #expect(BedrockTarget(path: "/bedrock/model//invoke") == nil)
        #expect(BedrockTarget(path: "/bedrock/model/bad%zz/invoke") == nil)
        #expect(BedrockTarget(path: "/bedrock/other") == nil)
    }

    @Test("path segments are encoded as AWS SDKs send them")
    func encoding() {
        #expect(percentEncodePathSegment("us.anthropic.claude-v1:0") == "us.anthropic.claude-v1%3A0")
        #expect(percentEncodePathSegment("arn:aws:x/abc é") == "arn%3Aaws%3Ax%2Fabc%20%C3%A9")
        #expect(percentDecodePathSegment("arn%3Aaws%3Ax%2Fabc%20%C3%A9".utf8) == "arn:aws:x/abc é")
        #expect(percentDecodePathSegment("plain.id-v1:0".utf8) == "plain.id-v1:0")
        #expect(percentDecodePathSegment("bad%C3".utf8) == nil)
        #expect(percentDecodePathSegment("bad%G1".utf8) == nil)
        #expect(percentEncodePathSegment("plain.id-v1_0~") == "plain.id-v1_0~")
    }

    @Test("upstream URLs: an endpoint's path prefix comes once, Host carries a port only when it is not the scheme's", arguments: [
        ("https://bedrock-runtime.us-east-1.amazonaws.com", "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse-stream", "/model/m%3A0/converse-stream", "bedrock-runtime.us-east-1.amazonaws.com"),
        ("https://proxy.example:443/bedrock-runtime/", "https://proxy.example/bedrock-runtime/model/m%3A0/converse-stream", "/bedrock-runtime/model/m%3A0/converse-stream", "proxy.example"),
        ("http://127.0.0.1:8090/a/b", "http://127.0.0.1:8090/a/b/model/m%3A0/converse-stream", "/a/b/model/m%3A0/converse-stream", "127.0.0.1:8090"),
        ("http://[::1]:8090", "http://[::1]:8090/model/m%3A0/converse-stream", "/model/m%3A0/converse-stream", "[::1]:8090"),
    ])
    func upstreamURLs(endpoint: String, url: String, path: String, host: String) async throws {
        let client = UpstreamClient(
            endpoint: try #require(URL(string: endpoint)), region: "us-east-1", authentication: .none, timeouts: GatewayConfiguration.Timeouts()
        )
        // What is sent (Host and the request's path) is the expected URL.
        #expect("\(client.endpoint.scheme ?? "")://\(client.hostHeader)\(client.path(operation: .converseStream, modelID: "m:0"))" == url)
        #expect(client.path(operation: .converseStream, modelID: "m:0") == path)
        #expect(client.hostHeader == host)
        try await client.shutdown()
    }
}
