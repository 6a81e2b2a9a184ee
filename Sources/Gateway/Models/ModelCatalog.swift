/// Model names clients may use, and what they mean upstream.
///
/// Aliases (`claude-sonnet`, `gpt-4o`, …) map to Bedrock model ids; any other name passes through as
/// a Bedrock id, so cross-region inference profile ids (`us.`, `eu.`, `apac.`, `global.`, …) and
/// application-inference-profile ARNs work without configuration.
package struct ModelCatalog: Sendable {
    package var defaultModel = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    package var aliases: [String: String] = [
        "claude-sonnet": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "claude-haiku": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "claude-opus": "us.anthropic.claude-opus-4-1-20250805-v1:0",
        "gpt-4o": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "gpt-4o-mini": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    ]
    /// Ids listed by `/v1/models` and the inference-profile listing; empty means the alias targets and
    /// the default.
    package var allowed: [String] = []

    package init() {}

    /// The Bedrock id for what a client asked for (`nil` or empty: the default model).
    package func resolve(_ requested: String?) -> String {
        guard let requested, !requested.isEmpty else { return self.defaultModel }
        return self.aliases[requested] ?? requested
    }

    /// The Bedrock ids this gateway advertises, without duplicates, in a stable order.
    package var advertisedModelIDs: [String] {
        var seen = Set<String>()
        let candidates = self.allowed.isEmpty ? [self.defaultModel] + self.aliases.keys.sorted().compactMap { self.aliases[$0] } : self.allowed
        return candidates.filter { seen.insert($0).inserted }
    }

    /// Cross-region inference profile prefixes (BEDROCK_API.md §5).
    package static let crossRegionPrefixes = ["us.", "eu.", "apac.", "jp.", "au.", "us-gov.", "global.", "amer."]

    /// The id without a cross-region prefix: `us.anthropic.claude…` → `anthropic.claude…`.
    package static func foundationModelID(_ id: String) -> String {
        for prefix in Self.crossRegionPrefixes where id.hasPrefix(prefix) {
            return String(id.dropFirst(prefix.count))
        }
        return id
    }
}
