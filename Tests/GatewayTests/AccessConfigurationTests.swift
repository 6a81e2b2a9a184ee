import Foundation
import Gateway
import StreamCore
import Testing

/// The configuration keys of issue 5: `store.path`, `policies`, `prices`.
struct AccessConfigurationTests {
    private func write(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-config-\(UUID().uuidString).json").path
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("no file: the built-in admins policy; a file without policies: none (default deny)")
    func defaults() throws {
        #expect(GatewayConfiguration().policies == AccessPolicy.builtIn)
        let file = try self.write(#"{"server":{"port":9000}}"#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try GatewayConfiguration.load(file: file, environment: [:]).policies.isEmpty)
    }

    @Test("policies, prices and store.path are read")
    func parsed() throws {
        let file = try self.write(#"""
            {"store":{"path":"/var/lib/sluice/sluice.db"},
             "policies":[
               {"source":"group:engineering","provider":"default","models":["us.anthropic.*","claude-sonnet"],
                "limits":{"requestsPerMinute":60,"tokensPerMinute":100000,"tokensPerDay":2000000,"budgetUSDPerMonth":250.5}},
               {"source":"identity:jane@corp"},
               {"source":"*","models":["claude-haiku"]}],
             "prices":[{"model":"anthropic.claude-sonnet-*","input":3,"output":15,"cacheRead":0.3,"cacheWrite":3.75}]}
            """#)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let configuration = try GatewayConfiguration.load(file: file, environment: [:])
        #expect(configuration.storePath == "/var/lib/sluice/sluice.db")
        #expect(configuration.policies.count == 3)
        #expect(configuration.policies[0].source == .group("engineering"))
        #expect(configuration.policies[0].models == ["us.anthropic.*", "claude-sonnet"])
        #expect(configuration.policies[0].limits == .init(requestsPerMinute: 60, tokensPerMinute: 100_000, tokensPerDay: 2_000_000, budgetUSDPerMonth: 250.5))
        #expect(configuration.policies[1] == AccessPolicy(source: .identity("jane@corp")))
        #expect(configuration.policies[2].source == .everyone)
        #expect(configuration.prices.cost(of: TokenUsage(inputTokens: 1_000_000), model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0") == 3)
    }

    @Test("a bad policy or price names its key", arguments: [
        (#"{"policies":[{"source":"jane"}]}"#, "policies[0].source"),
        (#"{"policies":[{"source":"*","provider":"openai"}]}"#, "policies[0].provider"),
        (#"{"policies":[{"source":"*","limits":{"rpm":1}}]}"#, "policies[0].limits.rpm"),
        (#"{"policies":[{"source":"*","limits":{"budgetUSDPerMonth":-1}}]}"#, "policies[0].limits.budgetUSDPerMonth"),
        (#"{"prices":[{"model":"x","input":1}]}"#, "prices[0]"),
        (#"{"store":{"file":"x"}}"#, "store.file"),
    ])
    func rejected(json: String, key: String) throws {
        let file = try self.write(json)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect {
            try GatewayConfiguration.load(file: file, environment: [:])
        } throws: { error in
            (error as? ConfigurationError)?.key == key
        }
    }
}
