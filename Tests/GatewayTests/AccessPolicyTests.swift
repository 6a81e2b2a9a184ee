import Foundation
import BedrockSimulator
import Gateway
import NIOCore
import NIOHTTP1
import Testing

@Suite
struct AccessPolicyTests {
    static let sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    static let haiku = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    let jane = Caller(identity: "jane@corp", groups: ["engineering"], tokenPrefix: "aaaaaaaa")
    let bob = Caller(identity: "bob", groups: ["sales"], tokenPrefix: "bbbbbbbb")

    func set(_ policies: [AccessPolicy]) -> PolicySet { PolicySet(policies: policies, catalog: ModelCatalog()) }

    func allowed(_ verdict: PolicyVerdict) -> Bool {
        if case .allowed = verdict { return true }
        return false
    }

    @Test("no policies: everything denied; the built-in one admits admins only")
    func defaultDeny() {
        #expect(!self.allowed(self.set([]).evaluate(self.jane, requested: "claude-sonnet", resolved: Self.sonnet)))
        let builtIn = self.set(AccessPolicy.builtIn)
        #expect(!self.allowed(builtIn.evaluate(self.jane, requested: "claude-sonnet", resolved: Self.sonnet)))
        let admin = Caller(identity: "root", groups: ["admins"], tokenPrefix: "cccccccc")
        #expect(self.allowed(builtIn.evaluate(admin, requested: "anything.at.all", resolved: "anything.at.all")))
    }

    @Test("sources: identity, group and * each match whom they name")
    func sources() {
        let byIdentity = self.set([AccessPolicy(source: .identity("jane@corp"))])
        #expect(self.allowed(byIdentity.evaluate(self.jane, requested: "m", resolved: "m")))
        #expect(!self.allowed(byIdentity.evaluate(self.bob, requested: "m", resolved: "m")))
        let byGroup = self.set([AccessPolicy(source: .group("sales"))])
        #expect(!self.allowed(byGroup.evaluate(self.jane, requested: "m", resolved: "m")))
        #expect(self.allowed(byGroup.evaluate(self.bob, requested: "m", resolved: "m")))
        let everyone = self.set([AccessPolicy(source: .everyone)])
        #expect(self.allowed(everyone.evaluate(self.jane, requested: "m", resolved: "m")))
        #expect(self.allowed(everyone.evaluate(self.bob, requested: "m", resolved: "m")))
        #expect(AccessPolicy.Source("identity:jane") == .identity("jane"))
        #expect(AccessPolicy.Source("group:eng") == .group("eng"))
        #expect(AccessPolicy.Source("*") == .everyone)
        #expect(AccessPolicy.Source("jane") == nil)
        #expect(AccessPolicy.Source("group:") == nil)
    }

    @Test("allowlists: globs, with or without a cross-region prefix, and aliases")
    func allowlists() {
        let policies = self.set([AccessPolicy(source: .group("engineering"), models: ["us.anthropic.claude-sonnet-*"])])
        #expect(self.allowed(policies.evaluate(self.jane, requested: "claude-sonnet", resolved: Self.sonnet)))
        #expect(self.allowed(policies.evaluate(self.jane, requested: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", resolved: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0")))
        #expect(self.allowed(policies.evaluate(self.jane, requested: "anthropic.claude-sonnet-4-5-20250929-v1:0", resolved: "anthropic.claude-sonnet-4-5-20250929-v1:0")))
        #expect(!self.allowed(policies.evaluate(self.jane, requested: "claude-haiku", resolved: Self.haiku)))

        let bare = self.set([AccessPolicy(source: .everyone, models: ["anthropic.claude-haiku-*"])])
        #expect(self.allowed(bare.evaluate(self.bob, requested: "global.anthropic.claude-haiku-4-5-20251001-v1:0", resolved: "global.anthropic.claude-haiku-4-5-20251001-v1:0")))
        #expect(self.allowed(bare.evaluate(self.bob, requested: "gpt-4o-mini", resolved: Self.haiku)))

        let byAlias = self.set([AccessPolicy(source: .everyone, models: ["claude-haiku"])])
        #expect(self.allowed(byAlias.evaluate(self.bob, requested: "claude-haiku", resolved: Self.haiku)))
        // The alias stands for its Bedrock id, however the client names it.
        #expect(self.allowed(byAlias.evaluate(self.bob, requested: Self.haiku, resolved: Self.haiku)))
        #expect(self.allowed(byAlias.evaluate(self.bob, requested: "apac.anthropic.claude-haiku-4-5-20251001-v1:0", resolved: "apac.anthropic.claude-haiku-4-5-20251001-v1:0")))
        #expect(!self.allowed(byAlias.evaluate(self.bob, requested: "claude-sonnet", resolved: Self.sonnet)))
    }

    @Test("a denial names the reason and only the caller")
    func denialReason() {
        let policies = self.set([AccessPolicy(source: .identity("someone-else")), AccessPolicy(source: .group("engineering"), models: ["claude-haiku"])])
        guard case .denied(let reason) = policies.evaluate(self.jane, requested: "claude-sonnet", resolved: Self.sonnet) else {
            Issue.record("expected a denial")
            return
        }
        #expect(reason.contains("claude-sonnet"))
        #expect(!reason.contains("someone-else"))
        guard case .denied(let none) = policies.evaluate(self.bob, requested: "m", resolved: "m") else {
            Issue.record("expected a denial")
            return
        }
        #expect(none.contains("no policy"))
    }

    @Test("limits: an identity's and *'s count for the caller, a group's for the group; the tightest wins per scope")
    func limitScopes() {
        let policies = self.set([
            AccessPolicy(source: .everyone, limits: .init(requestsPerMinute: 100)),
            AccessPolicy(source: .identity("jane@corp"), limits: .init(requestsPerMinute: 10, tokensPerDay: 1000)),
            AccessPolicy(source: .group("engineering"), limits: .init(budgetUSDPerMonth: 50)),
        ])
        guard case .allowed(let limits) = policies.evaluate(self.jane, requested: "m", resolved: "m") else {
            Issue.record("expected access")
            return
        }
        #expect(limits[.identity("jane@corp")] == .init(requestsPerMinute: 10, tokensPerDay: 1000))
        #expect(limits[.group("engineering")] == .init(budgetUSDPerMonth: 50))
    }

    @Test("globs")
    func globs() {
        #expect(Glob.matches("*", ""))
        #expect(Glob.matches("us.*", "us.anthropic"))
        #expect(Glob.matches("*sonnet*", "us.anthropic.claude-sonnet-4"))
        #expect(Glob.matches("a?c", "abc"))
        #expect(!Glob.matches("a?c", "ac"))
        #expect(!Glob.matches("us.*", "eu.anthropic"))
        #expect(Glob.matches("claude-sonnet", "claude-sonnet"))
        #expect(!Glob.matches("claude-sonnet", "claude-sonnet-x"))
    }

    @Test("a denied request is a 403 in the caller's shape, and is in the ledger")
    func forbiddenLive() async throws {
        try await LiveStack.run(configure: {
            $0.policies = [AccessPolicy(source: .group("admins"), models: ["claude-haiku"])]
        }) { stack in
            let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("hi", model: "claude-sonnet"))
            #expect(status == .forbidden)
            #expect(String(buffer: body).contains("\"type\":\"permission_error\""))
            #expect(errorMessage(body)?.contains("claude-sonnet") == true)
            let bedrock = try await stack.post(
                "/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
                json: #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#
            )
            #expect(bedrock.0 == .forbidden)
            #expect(bedrock.1.first(name: "x-amzn-errortype")?.hasPrefix("AccessDeniedException") == true)
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("hi [[sim chunks=2]]", model: "claude-haiku")).0 == .ok)
            #expect(stack.recorder.entries.count == 1)
            let rows = try await stack.store.usage(since: .distantPast)
            #expect(rows.map(\.status).sorted() == [200, 403, 403])
        }
    }
}
