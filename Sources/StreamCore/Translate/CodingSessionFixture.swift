package import NIOCore

/// A realistic coding-agent chat-completions request, generated deterministically, for the mapper's
/// tests and benchmarks (benchmarks cannot read test fixtures, so it lives here).
///
/// The shape follows what Cline/Roo/Continue send: a long system prompt with a `cache_control`
/// marker, six function tools, one task, then 40 rounds of assistant tool calls and tool results
/// holding source code full of quotes, backslashes, tabs and non-ASCII text (`é`, `→`, `🚀`),
/// a follow-up user message every ten rounds, and `stream: true` with usage.
///
/// Size with the defaults: 209,802 bytes (checked by `CodingSessionFixtureTests`), 1 system +
/// 85 other messages.
///
/// Benchmark use: build the body once in setup, then measure `mapper.map(body)`:
/// ```swift
/// let body = CodingSessionFixture.makeRequestBody()
/// let mapper = ChatRequestMapper()
/// benchmark.startMeasurement()
/// blackHole(try mapper.map(body))
/// ```
package enum CodingSessionFixture {
    /// Tool-call rounds in the default fixture.
    package static let defaultRounds = 40

    package static func makeRequestBody(
        rounds: Int = defaultRounds,
        model: String = "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        var output = JSONOutput(buffer: allocator.buffer(capacity: 220_000))
        output.raw("{\"model\":")
        output.string(model)
        output.raw(",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_tokens\":8192,\"temperature\":0")
        output.raw(",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":")
        output.string(systemPrompt)
        output.raw(",\"cache_control\":{\"type\":\"ephemeral\"}}]}")
        output.raw(",{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":")
        output.string("Refactor the parser in Sources/Parser so it streams — keep the “fast path” and don’t break Windows paths like C:\\Users\\dev.")
        output.raw("}]}")
        for round in 0..<rounds {
            let callID = "toolu_bdrk_\(String(round, radix: 16))_0f3c9a"
            let path = "Sources/Parser/Module\(round)/File\(round % 7).swift"
            var arguments = JSONOutput(buffer: allocator.buffer(capacity: 128))
            arguments.raw("{\"path\":")
            arguments.string(path)
            arguments.raw(",\"reason\":")
            arguments.string("check the \"escape\" handling \\ round \(round)")
            arguments.raw("}")
            output.raw(",{\"role\":\"assistant\",\"content\":")
            output.string("Let me read `\(path)` next (step \(round + 1)) → then I'll compare it with the tests.")
            output.raw(",\"tool_calls\":[{\"id\":")
            output.string(callID)
            output.raw(",\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":")
            output.string(containing: arguments.buffer)
            output.raw("}}]}")
            output.raw(",{\"role\":\"tool\",\"tool_call_id\":")
            output.string(callID)
            output.raw(",\"content\":")
            output.string(sourceFile(round: round))
            output.raw("}")
            if round % 10 == 9 {
                output.raw(",{\"role\":\"user\",\"content\":")
                output.string("Looks good so far 🚀 — also check the tests under Tests\\Parser for round \(round).")
                output.raw("}")
            }
        }
        output.raw("],\"tools\":[")
        for (index, tool) in tools.enumerated() {
            if index > 0 { output.raw(",") }
            output.raw("{\"type\":\"function\",\"function\":{\"name\":")
            output.string(tool.name)
            output.raw(",\"description\":")
            output.string(tool.description)
            output.raw(",\"parameters\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\",\"description\":\"Path relative to the workspace root.\"},\"reason\":{\"type\":\"string\"},\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":2000}},\"required\":[\"path\"]}}}")
        }
        output.raw("],\"tool_choice\":\"auto\",\"parallel_tool_calls\":false,\"user\":\"dev@example.com\"}")
        return output.buffer
    }

    private static let tools: [(name: String, description: String)] = [
        ("read_file", "Read a file from the workspace and return its contents with line numbers."),
        ("write_file", "Write a whole file. Overwrites existing content; use edit_file for small changes."),
        ("edit_file", "Replace an exact string in a file with another string."),
        ("run_command", "Run a shell command in the workspace and return stdout, stderr and the exit code."),
        ("search", "Search the workspace with a regular expression and return matching lines."),
        ("list_files", "List files under a directory, honouring .gitignore."),
    ]

    private static let systemPrompt: String = {
        var prompt = "You are a careful software engineer working in the user's repository. "
        let rules = [
            "Read a file before you edit it; never guess at contents you have not seen.",
            "Prefer small, reviewable edits. Keep the existing style: 4-space indents, no force unwraps.",
            "When a command fails, read its output and explain the cause before retrying.",
            "Quote paths with spaces, e.g. \"My Project/Sources\"; Windows paths use backslashes: C:\\src\\app.",
            "Never print secrets; redact tokens like sk-… in any output you show.",
            "Use the tools; do not ask the user to run commands you can run yourself.",
            "Answer in the user's language — français, español, 日本語 all welcome.",
        ]
        for section in 0..<24 {
            prompt += "\n\n## Section \(section + 1)\n"
            for (index, rule) in rules.enumerated() {
                prompt += "\(index + 1). \(rule)\n"
            }
        }
        return prompt
    }()

    /// ~4.4 KB of Swift-like source with the characters escaping must get right.
    private static func sourceFile(round: Int) -> String {
        var file = "// File \(round): parser module — généré automatiquement, ne pas éditer à la main.\n"
        for function in 0..<4 {
            let name = "parseToken\(round)_\(function)"
            file += """
                \(function + 1)\tfunc \(name)(_ input: String) throws -> [Token] {
                \t    // Handles "quoted" strings, escapes like \\n and \\t, and paths such as C:\\temp\\file.txt.
                \t    var tokens: [Token] = []
                \t    var index = input.startIndex
                \t    while index < input.endIndex {
                \t        let character = input[index]
                \t        switch character {
                \t        case "\\"":
                \t            tokens.append(.quote)          // a literal " in the source
                \t        case "\\\\":
                \t            tokens.append(.backslash)      // a literal \\ in the source
                \t        case "→", "é", "🚀":
                \t            tokens.append(.symbol(String(character)))
                \t        default:
                \t            tokens.append(.character(character))
                \t        }
                \t        index = input.index(after: index)
                \t    }
                \t    if tokens.isEmpty { throw ParseError.empty(line: \(round * 10 + function)) }
                \t    return tokens
                \t}

                """
            file += String(repeating: "\t// padding line with a tab, a quote \" and a backslash \\ — \(function)\n", count: 3)
        }
        return file
    }
}
