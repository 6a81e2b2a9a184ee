/// The Claude models Sluice knows by their Anthropic names, and how each is called on Bedrock.
///
/// Claude Code in gateway mode and the Anthropic SDKs name models the Anthropic way
/// (`claude-sonnet-4-5-20250929`, `claude-opus-4-1`, `claude-sonnet-4-5[1m]`); Bedrock wants its
/// own ids, and for every current Claude model a cross-region inference profile of the caller's
/// geography (on-demand calls of the bare id are refused: "Invocation of model ID … with on-demand
/// throughput isn't supported"). This table is the translation, plus what `GET /v1/models` lists.
///
/// Sources: AWS's "Supported foundation models" and per-model cards (Bedrock ids, geographies with a
/// system-defined profile); Anthropic's model overview (names, aliases, snapshot dates). Where a
/// geography is not listed for a model, the `global.` profile is used if the model has one, else the
/// id is sent bare and Bedrock's own error reaches the client.
package enum AnthropicModelTable {
    /// A geography prefix of a system-defined cross-region inference profile.
    package enum Geography: String, Sendable, Hashable, CaseIterable {
        case us, eu, apac, usGov = "us-gov", global

        /// The profile prefix for the upstream's region: `us-*`/`ca-*` → `us.`, `eu-*` → `eu.`,
        /// `ap-*` → `apac.`, `us-gov-*` → `us-gov.`; `nil` for regions without one (the model's
        /// `global.` profile is then used when it has one).
        package static func forRegion(_ region: String) -> Geography? {
            if region.hasPrefix("us-gov-") { return .usGov }
            if region.hasPrefix("us-") || region.hasPrefix("ca-") { return .us }
            if region.hasPrefix("eu-") { return .eu }
            if region.hasPrefix("ap-") { return .apac }
            return nil
        }
    }

    /// One model.
    package struct Entry: Sendable, Hashable {
        /// The dated Anthropic id (`claude-sonnet-4-5-20250929`); what `GET /v1/models` lists as `id`.
        package var id: String
        /// Other names clients send for it (`claude-sonnet-4-5`, `claude-3-7-sonnet-latest`).
        package var aliases: [String]
        /// The Bedrock foundation-model id, without a geography prefix.
        package var bedrockID: String
        package var displayName: String
        /// RFC 3339, as Anthropic's `GET /v1/models` writes it: the snapshot's release date.
        package var createdAt: String
        /// Geographies with a system-defined cross-region profile for this model.
        package var geographies: Set<Geography>
        /// Whether the model takes `context-1m-2025-08-07` (the `[1m]` suffix).
        package var supportsLongContext: Bool

        /// Every name that resolves to this entry.
        package var names: [String] { [self.id] + self.aliases }

        /// The id to call from `region`: `<geography>.<bedrockID>`, the `global.` profile when the
        /// region's geography has none, or the bare id when neither exists.
        package func modelID(region: String?) -> String {
            if let region, let geography = Geography.forRegion(region), self.geographies.contains(geography) {
                return geography.rawValue + "." + self.bedrockID
            }
            if self.geographies.contains(.global) { return "global." + self.bedrockID }
            return self.bedrockID
        }
    }

    /// The suffix Claude Code appends for the 1M-token context window (`claude-sonnet-4-5[1m]`).
    package static let longContextSuffix = "[1m]"
    /// The beta that turns the 1M context window on.
    package static let longContextBeta = "context-1m-2025-08-07"

    /// Current and recent Claude models, newest first (the order `GET /v1/models` lists them in).
    package static let entries: [Entry] = [
        Entry(
            id: "claude-opus-4-6", aliases: [], bedrockID: "anthropic.claude-opus-4-6-v1", displayName: "Claude Opus 4.6",
            createdAt: "2026-02-05T00:00:00Z", geographies: [.us, .eu, .global], supportsLongContext: true
        ),
        Entry(
            id: "claude-opus-4-5-20251101", aliases: ["claude-opus-4-5"], bedrockID: "anthropic.claude-opus-4-5-20251101-v1:0",
            displayName: "Claude Opus 4.5", createdAt: "2025-11-24T00:00:00Z", geographies: [.us, .eu, .global],
            supportsLongContext: false
        ),
        Entry(
            id: "claude-haiku-4-5-20251001", aliases: ["claude-haiku-4-5"], bedrockID: "anthropic.claude-haiku-4-5-20251001-v1:0",
            displayName: "Claude Haiku 4.5", createdAt: "2025-10-15T00:00:00Z", geographies: [.us, .eu, .global],
            supportsLongContext: false
        ),
        Entry(
            id: "claude-sonnet-4-5-20250929", aliases: ["claude-sonnet-4-5"], bedrockID: "anthropic.claude-sonnet-4-5-20250929-v1:0",
            displayName: "Claude Sonnet 4.5", createdAt: "2025-09-29T00:00:00Z", geographies: [.us, .eu, .global],
            supportsLongContext: true
        ),
        Entry(
            id: "claude-opus-4-1-20250805", aliases: ["claude-opus-4-1"], bedrockID: "anthropic.claude-opus-4-1-20250805-v1:0",
            displayName: "Claude Opus 4.1", createdAt: "2025-08-05T00:00:00Z", geographies: [.us], supportsLongContext: false
        ),
        Entry(
            id: "claude-opus-4-20250514", aliases: ["claude-opus-4-0", "claude-opus-4"], bedrockID: "anthropic.claude-opus-4-20250514-v1:0",
            displayName: "Claude Opus 4", createdAt: "2025-05-22T00:00:00Z", geographies: [.us], supportsLongContext: false
        ),
        Entry(
            id: "claude-sonnet-4-20250514", aliases: ["claude-sonnet-4-0", "claude-sonnet-4"],
            bedrockID: "anthropic.claude-sonnet-4-20250514-v1:0", displayName: "Claude Sonnet 4", createdAt: "2025-05-22T00:00:00Z",
            geographies: [.us, .eu, .apac, .global], supportsLongContext: true
        ),
        Entry(
            id: "claude-3-7-sonnet-20250219", aliases: ["claude-3-7-sonnet-latest"], bedrockID: "anthropic.claude-3-7-sonnet-20250219-v1:0",
            displayName: "Claude Sonnet 3.7", createdAt: "2025-02-24T00:00:00Z", geographies: [.us, .eu, .apac, .usGov],
            supportsLongContext: false
        ),
        Entry(
            id: "claude-3-5-haiku-20241022", aliases: ["claude-3-5-haiku-latest"], bedrockID: "anthropic.claude-3-5-haiku-20241022-v1:0",
            displayName: "Claude Haiku 3.5", createdAt: "2024-10-22T00:00:00Z", geographies: [.us], supportsLongContext: false
        ),
        Entry(
            id: "claude-3-5-sonnet-20241022", aliases: ["claude-3-5-sonnet-latest"], bedrockID: "anthropic.claude-3-5-sonnet-20241022-v2:0",
            displayName: "Claude Sonnet 3.5 (New)", createdAt: "2024-10-22T00:00:00Z", geographies: [.us, .apac],
            supportsLongContext: false
        ),
        Entry(
            id: "claude-3-5-sonnet-20240620", aliases: [], bedrockID: "anthropic.claude-3-5-sonnet-20240620-v1:0",
            displayName: "Claude Sonnet 3.5 (Old)", createdAt: "2024-06-20T00:00:00Z", geographies: [.us, .eu, .apac, .usGov],
            supportsLongContext: false
        ),
        Entry(
            id: "claude-3-haiku-20240307", aliases: [], bedrockID: "anthropic.claude-3-haiku-20240307-v1:0",
            displayName: "Claude Haiku 3", createdAt: "2024-03-07T00:00:00Z", geographies: [.us, .eu, .apac, .usGov],
            supportsLongContext: false
        ),
    ]

    /// The entry a name (dated id or alias, without `[1m]`) stands for.
    package static func entry(named name: String) -> Entry? {
        Self.byName[name]
    }

    /// The entry whose Bedrock id is inside `modelID` (`us.anthropic.claude-…-v1:0`, the bare id, or a
    /// foundation-model ARN ending in it); `nil` for application-inference-profile ARNs and unknown ids.
    package static func entry(bedrockModelID modelID: String) -> Entry? {
        // Longest first: `anthropic.claude-opus-4-20250514` must not match inside another id.
        for entry in Self.entriesByBedrockIDLength where modelID.hasSuffix(entry.bedrockID) {
            let prefix = modelID.dropLast(entry.bedrockID.count)
            // Only a geography prefix, an ARN path, or nothing may come before the id.
            if prefix.isEmpty || prefix.hasSuffix(".") || prefix.hasSuffix("/") { return entry }
        }
        return nil
    }

    private static let byName: [String: Entry] = {
        var names: [String: Entry] = [:]
        for entry in Self.entries {
            for name in entry.names { names[name] = entry }
        }
        return names
    }()

    private static let entriesByBedrockIDLength = Self.entries.sorted { $0.bedrockID.count > $1.bedrockID.count }
}

/// A client's model name resolved to what Bedrock is called with.
package struct AnthropicModelResolution: Sendable, Hashable {
    /// The name as the client wrote it, `[1m]` included.
    package var requestedModel: String
    /// The Bedrock model id, inference-profile id or ARN to call.
    package var modelID: String
    /// The table entry, when the name (or a Bedrock id passed through) is a known model.
    package var entry: AnthropicModelTable.Entry?
    /// The name carried the `[1m]` suffix: the client wants the 1M-token context window.
    package var requestsLongContext: Bool
    /// The name came from `models.aliases`.
    package var isConfiguredAlias: Bool

    /// Resolves `name`.
    ///
    /// Order: strip `[1m]`; a configured alias wins (for the name with or without the suffix); a
    /// Bedrock id (it contains `anthropic.`) or an ARN passes through unchanged; a table name gets
    /// the profile of `region`'s geography. Anything else passes through unchanged with no entry
    /// (Bedrock answers for it; the gateway may prefer to refuse it as `not_found_error`).
    ///
    /// - Parameters:
    ///   - name: the client's `model`.
    ///   - aliases: `models.aliases` from the configuration.
    ///   - region: the upstream's AWS region (`eu-west-1`), for the cross-region prefix.
    package init(name: String, aliases: [String: String] = [:], region: String?) {
        self.requestedModel = name
        var base = Substring(name)
        self.requestsLongContext = false
        if base.hasSuffix(AnthropicModelTable.longContextSuffix) {
            base = base.dropLast(AnthropicModelTable.longContextSuffix.count)
            self.requestsLongContext = true
        }
        let baseName = String(base)
        if let aliased = aliases[name] ?? aliases[baseName] {
            self.modelID = aliased
            self.entry = AnthropicModelTable.entry(bedrockModelID: aliased) ?? AnthropicModelTable.entry(named: aliased)
            self.isConfiguredAlias = true
            return
        }
        self.isConfiguredAlias = false
        if baseName.contains("anthropic.") || baseName.hasPrefix("arn:") {
            self.modelID = baseName
            self.entry = AnthropicModelTable.entry(bedrockModelID: baseName)
            return
        }
        if let entry = AnthropicModelTable.entry(named: baseName) {
            self.modelID = entry.modelID(region: region)
            self.entry = entry
            return
        }
        self.modelID = baseName
        self.entry = nil
    }
}
