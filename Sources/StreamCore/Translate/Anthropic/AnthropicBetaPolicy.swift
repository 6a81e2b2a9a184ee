package import NIOCore

/// Which `anthropic_beta` values may reach Bedrock for a model, so that `400 invalid beta flag`
/// never reaches the user.
///
/// Bedrock refuses a whole request when its `anthropic_beta` holds one value the target model does
/// not take, and every Claude Code release sends new ones (CLAUDE_CODE.md §9). The policy keeps only
/// values known good for the model: a built-in table from AWS's documentation
/// (``builtInAcceptedBetas``), changed by configuration (``Rule``), minus what Bedrock has refused
/// for that model in this process (``AnthropicBetaRefusals``). With ``Mode/passthrough``
/// (`SLUICE_BETAS=passthrough`) nothing is filtered.
///
/// A value not known good is dropped, not kept: a dropped beta costs a feature, a kept bad one costs
/// the request.
///
/// ## Fields that exist only under a beta
/// When a beta is dropped, the body fields that only it allows go too, or Bedrock refuses the field
/// instead (``BetaFields``):
/// - `context-management-2025-06-27`: the top-level `context_management`;
/// - `tool-search-tool-2025-10-19` and `advanced-tool-use-2025-11-20` (Anthropic's name for the
///   same feature): `tools[]` entries whose `type` starts with `tool_search_tool_`, and
///   `defer_loading` in every tool (all tools are then declared in full, as Claude Code itself does
///   after a 400);
/// - `tool-examples-2025-10-29` and `advanced-tool-use-2025-11-20`: `input_examples` in every tool;
/// - `effort-2025-11-24`: `output_config.effort` (and `output_config` when that was all it held).
///
/// A field goes only when a beta that allows it was dropped and none that allows it was kept.
///
/// ```swift
/// let policy = AnthropicBetaPolicy(rules: [.init(model: "*sonnet-4-5*", change: .add(["effort-2025-11-24"]))])
/// let filtered = policy.filter(["interleaved-thinking-2025-05-14", "claude-code-20250219"], modelID: id)
/// // filtered.kept == ["interleaved-thinking-2025-05-14"], filtered.dropped == ["claude-code-20250219"]
/// ```
package struct AnthropicBetaPolicy: Sendable {
    package enum Mode: Sendable, Hashable {
        /// Keep known-good values only (the default).
        case filter
        /// Forward every value as the client sent it, and every field with it.
        case passthrough
    }

    /// One `models.betas` entry: `{"model": "<glob or name>", "add": […]}` or `{"model": …, "replace": […]}`.
    package struct Rule: Sendable, Hashable {
        package enum Change: Sendable, Hashable {
            /// Also accept these values.
            case add([String])
            /// Accept exactly these values (later `add` rules still add to them).
            case replace([String])
        }

        /// A glob (`*`, `?`) matched against the model id as called (`us.anthropic.claude-…`), the
        /// Bedrock foundation id, and the model's Anthropic names (`claude-sonnet-4-5`).
        package var model: String
        package var change: Change

        package init(model: String, change: Change) {
            self.model = model
            self.change = change
        }
    }

    /// The outcome of a filter.
    package struct Filtered: Sendable, Hashable {
        /// What goes to Bedrock, in the client's order, duplicates removed.
        package var kept: [String]
        /// What was removed (for the log and `sluice_betas_dropped_total{beta}`).
        package var dropped: [String]
    }

    package var mode: Mode
    /// Applied in order over the built-in table.
    package var rules: [Rule]
    /// Shared by every request of the process.
    package let refusals: AnthropicBetaRefusals

    package init(mode: Mode = .filter, rules: [Rule] = [], refusals: AnthropicBetaRefusals = AnthropicBetaRefusals()) {
        self.mode = mode
        self.rules = rules
        self.refusals = refusals
    }

    // MARK: The built-in table

    /// Values AWS documents for Claude 4 and later (Bedrock's `anthropic_beta` table: interleaved
    /// thinking "Claude 4+"; token-efficient tools "Claude 3.7 Sonnet and Claude 4+"), plus
    /// fine-grained tool streaming, which the Converse route already sends to every Claude model.
    private static let claude4: Set<String> = [
        "interleaved-thinking-2025-05-14", "token-efficient-tools-2025-02-19", "fine-grained-tool-streaming-2025-05-14",
    ]

    /// Accepted values per Bedrock foundation id, from AWS's "Anthropic Claude Messages API: Request
    /// and Response" (`anthropic_beta` table) and the model cards:
    /// - `context-1m-2025-08-07`: Claude Sonnet 4 and 4.5;
    /// - `context-management-2025-06-27`: Claude Sonnet 4.5 and Haiku 4.5;
    /// - `effort-2025-11-24`, `tool-search-tool-2025-10-19`, `tool-examples-2025-10-29`: Claude Opus 4.5;
    /// - `output-128k-2025-02-19`: Claude 3.7 Sonnet;
    /// - `computer-use-2025-01-24`: Claude 3.7 Sonnet and Claude (Opus, Sonnet) 4;
    ///   `computer-use-2024-10-22`: Claude 3.5 Sonnet v2.
    ///
    /// Left out on purpose: `dev-full-thinking-2025-05-14` (AWS: only after the account team enables
    /// it; otherwise refused), Anthropic-API-only values (`claude-code-20250219`,
    /// `advanced-tool-use-2025-11-20`, `thinking-token-count-2026-05-13`, …), and anything
    /// undocumented for a model. Configuration adds what a deployment knows works.
    package static let builtInAcceptedBetas: [String: Set<String>] = [
        "anthropic.claude-opus-4-6-v1": claude4,
        "anthropic.claude-opus-4-5-20251101-v1:0": claude4.union([
            "effort-2025-11-24", "tool-search-tool-2025-10-19", "tool-examples-2025-10-29",
        ]),
        "anthropic.claude-haiku-4-5-20251001-v1:0": claude4.union(["context-management-2025-06-27"]),
        "anthropic.claude-sonnet-4-5-20250929-v1:0": claude4.union([
            "context-1m-2025-08-07", "context-management-2025-06-27",
        ]),
        "anthropic.claude-opus-4-1-20250805-v1:0": claude4.union(["computer-use-2025-01-24"]),
        "anthropic.claude-opus-4-20250514-v1:0": claude4.union(["computer-use-2025-01-24"]),
        "anthropic.claude-sonnet-4-20250514-v1:0": claude4.union(["context-1m-2025-08-07", "computer-use-2025-01-24"]),
        "anthropic.claude-3-7-sonnet-20250219-v1:0": [
            "token-efficient-tools-2025-02-19", "output-128k-2025-02-19", "computer-use-2025-01-24",
            "fine-grained-tool-streaming-2025-05-14",
        ],
        "anthropic.claude-3-5-sonnet-20241022-v2:0": ["computer-use-2024-10-22"],
    ]

    // MARK: Filtering

    /// The values Bedrock should accept for `modelID` (as called: profile id, bare id or ARN).
    package func acceptedBetas(forModel modelID: String) -> Set<String> {
        let entry = AnthropicModelTable.entry(bedrockModelID: modelID)
        var accepted = entry.flatMap { Self.builtInAcceptedBetas[$0.bedrockID] } ?? []
        let candidates = [modelID] + (entry.map { [$0.bedrockID] + $0.names } ?? [])
        for rule in self.rules where candidates.contains(where: { ModelGlob.matches(rule.model, $0) }) {
            switch rule.change {
            case .add(let values): accepted.formUnion(values)
            case .replace(let values): accepted = Set(values)
            }
        }
        return accepted.subtracting(self.refusals.refused(model: modelID))
    }

    /// Splits `requested` into what may go to `modelID` and what must not.
    package func filter(_ requested: some Sequence<String>, modelID: String) -> Filtered {
        var seen: Set<String> = []
        let unique = requested.filter { !$0.isEmpty && seen.insert($0).inserted }
        guard self.mode == .filter else { return Filtered(kept: unique, dropped: []) }
        let accepted = self.acceptedBetas(forModel: modelID)
        return Filtered(kept: unique.filter(accepted.contains), dropped: unique.filter { !accepted.contains($0) })
    }

    // MARK: Bedrock-shaped bodies (the /bedrock routes)

    /// What ``repairInvokeBody(_:modelID:)`` decided.
    package enum BodyRepair: Sendable, Hashable {
        /// Send the body as it is: nothing had to go (or the body is not a JSON object, which
        /// Bedrock refuses on its own).
        case unchanged
        /// Send `body`: only `anthropic_beta` and the fields of the dropped betas differ.
        case repaired(body: ByteBuffer, filtered: Filtered)
    }

    /// Filters the `anthropic_beta` array of an InvokeModel body that is already in Bedrock's shape
    /// (the `/bedrock` routes): every other byte stays as the client sent it.
    ///
    /// The array keeps its place with the surviving values; when none survive the member is removed
    /// (Bedrock then sees a request without betas, which every model takes).
    package func repairInvokeBody(_ body: ByteBuffer, modelID: String) -> BodyRepair {
        guard self.mode == .filter else { return .unchanged }
        return body.withUnsafeReadableBytes { bytes -> BodyRepair in
            guard let layout = try? JSONMemberLayout(objectIn: bytes, range: 0..<bytes.count),
                let betaMember = layout.member("anthropic_beta", in: bytes),
                let requested = Self.strings(in: bytes, range: betaMember.value)
            else { return .unchanged }
            let filtered = self.filter(requested, modelID: modelID)
            guard !filtered.dropped.isEmpty else { return .unchanged }
            let fields = BetaFields(dropped: filtered.dropped, kept: filtered.kept)
            var out = ByteBuffer()
            out.reserveCapacity(bytes.count)
            out.writeStaticString("{")
            var first = true
            for member in layout.members {
                if JSONMemberLayout.key(member.key, in: bytes, equals: "anthropic_beta") {
                    guard !filtered.kept.isEmpty else { continue }
                    Self.separate(&first, &out)
                    out.writeBytes(bytes, range: member.whole.lowerBound..<member.value.lowerBound)
                    Self.writeStringArray(filtered.kept, into: &out)
                } else {
                    fields.write(member, from: bytes, separator: &first, into: &out)
                }
            }
            out.writeStaticString("}")
            return .repaired(body: out, filtered: filtered)
        }
    }

    // MARK: Helpers shared with the request mapper

    /// The strings of a JSON array of strings at `range`; `nil` when it is anything else.
    static func strings(in bytes: UnsafeRawBufferPointer, range: Range<Int>) -> [String]? {
        guard let parsed = try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[range]), maximumNestingDepth: 2),
            let array = parsed.arrayValue
        else { return nil }
        var strings: [String] = []
        for element in array {
            guard let string = element.stringValue else { return nil }
            strings.append(string)
        }
        return strings
    }

    static func writeStringArray(_ values: [String], into out: inout ByteBuffer) {
        out.writeStaticString("[")
        for (index, value) in values.enumerated() {
            if index > 0 { out.writeStaticString(",") }
            out.writeJSONString(value)
        }
        out.writeStaticString("]")
    }

    @inline(__always)
    static func separate(_ first: inout Bool, _ out: inout ByteBuffer) {
        if !first { out.writeStaticString(",") }
        first = false
    }
}

/// The body fields that exist only under a beta, and the rewrite that removes them when their beta
/// was dropped (see ``AnthropicBetaPolicy`` "Fields that exist only under a beta").
struct BetaFields {
    static let contextManagementBetas: Set<String> = ["context-management-2025-06-27"]
    static let toolSearchBetas: Set<String> = ["tool-search-tool-2025-10-19", "advanced-tool-use-2025-11-20"]
    static let toolExamplesBetas: Set<String> = ["tool-examples-2025-10-29", "advanced-tool-use-2025-11-20"]
    static let effortBetas: Set<String> = ["effort-2025-11-24"]

    var removesContextManagement = false
    var removesToolSearch = false
    var removesToolExamples = false
    var removesEffort = false

    init(dropped: [String], kept: [String]) {
        let dropped = Set(dropped)
        let kept = Set(kept)
        func removes(_ betas: Set<String>) -> Bool { !dropped.isDisjoint(with: betas) && kept.isDisjoint(with: betas) }
        self.removesContextManagement = removes(Self.contextManagementBetas)
        self.removesToolSearch = removes(Self.toolSearchBetas)
        self.removesToolExamples = removes(Self.toolExamplesBetas)
        self.removesEffort = removes(Self.effortBetas)
    }

    var removesAnything: Bool {
        self.removesContextManagement || self.removesToolSearch || self.removesToolExamples || self.removesEffort
    }

    /// Writes one top-level member: spliced as it is, rewritten, or left out.
    func write(
        _ member: JSONMemberLayout.Member, from bytes: UnsafeRawBufferPointer, separator first: inout Bool, into out: inout ByteBuffer
    ) {
        let key = member.key
        if self.removesContextManagement, JSONMemberLayout.key(key, in: bytes, equals: "context_management") { return }
        if self.removesToolSearch || self.removesToolExamples, JSONMemberLayout.key(key, in: bytes, equals: "tools"),
            let elements = try? JSONMemberLayout.elements(ofArrayIn: bytes, range: member.value)
        {
            AnthropicBetaPolicy.separate(&first, &out)
            out.writeBytes(bytes, range: member.whole.lowerBound..<member.value.lowerBound)
            self.writeTools(elements, from: bytes, into: &out)
            return
        }
        if self.removesEffort, JSONMemberLayout.key(key, in: bytes, equals: "output_config"),
            let config = try? JSONMemberLayout(objectIn: bytes, range: member.value)
        {
            let remaining = config.members.filter { !JSONMemberLayout.key($0.key, in: bytes, equals: "effort") }
            guard !remaining.isEmpty else { return }
            AnthropicBetaPolicy.separate(&first, &out)
            out.writeBytes(bytes, range: member.whole.lowerBound..<member.value.lowerBound)
            Self.writeObject(remaining, from: bytes, into: &out)
            return
        }
        AnthropicBetaPolicy.separate(&first, &out)
        out.writeBytes(bytes, range: member.whole)
    }

    /// The tools array without tool-search tools, `defer_loading` and `input_examples`, as asked.
    private func writeTools(_ elements: [Range<Int>], from bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        out.writeStaticString("[")
        var first = true
        for element in elements {
            guard let tool = try? JSONMemberLayout(objectIn: bytes, range: element) else {
                // Not an object: Bedrock decides; it is not ours to change.
                AnthropicBetaPolicy.separate(&first, &out)
                out.writeBytes(bytes, range: element)
                continue
            }
            if self.removesToolSearch, let type = tool.member("type", in: bytes), Self.isToolSearchType(type.value, in: bytes) {
                continue
            }
            let kept = tool.members.filter { member in
                !(self.removesToolSearch && JSONMemberLayout.key(member.key, in: bytes, equals: "defer_loading"))
                    && !(self.removesToolExamples && JSONMemberLayout.key(member.key, in: bytes, equals: "input_examples"))
            }
            AnthropicBetaPolicy.separate(&first, &out)
            if kept.count == tool.members.count {
                out.writeBytes(bytes, range: element)
            } else {
                Self.writeObject(kept, from: bytes, into: &out)
            }
        }
        out.writeStaticString("]")
    }

    /// `"tool_search_tool_…"` (`tool_search_tool_regex_20251119`, `tool_search_tool_bm25_…`).
    private static func isToolSearchType(_ value: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Bool {
        let prefix: StaticString = "\"tool_search_tool_"
        guard value.count > prefix.utf8CodeUnitCount else { return false }
        let head = value.lowerBound..<(value.lowerBound + prefix.utf8CodeUnitCount)
        return UnsafeRawBufferPointer(rebasing: bytes[head]).elementsEqual(
            UnsafeRawBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
        )
    }

    private static func writeObject(_ members: [JSONMemberLayout.Member], from bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        out.writeStaticString("{")
        for (index, member) in members.enumerated() {
            if index > 0 { out.writeStaticString(",") }
            out.writeBytes(bytes, range: member.whole)
        }
        out.writeStaticString("}")
    }
}

/// `*` (any run) and `?` (one byte) over UTF-8 bytes: the model patterns of `models.betas` and of
/// the simulator's accepted-betas setting.
package enum ModelGlob {
    package static func matches(_ pattern: String, _ text: String) -> Bool {
        let pattern = Array(pattern.utf8)
        let text = Array(text.utf8)
        var p = 0
        var t = 0
        var star: Int?
        var resume = 0
        // The classic backtracking matcher: linear in practice, no recursion.
        while t < text.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = p
                resume = t
                p += 1
            } else if let starIndex = star {
                p = starIndex + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}
