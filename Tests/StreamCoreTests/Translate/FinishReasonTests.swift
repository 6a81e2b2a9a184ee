import StreamCore
import Testing

extension TranslateTests {
    struct FinishReasonTests {
        @Test(
            "maps every documented Bedrock stop reason",
            arguments: [
                ("end_turn", "stop"),
                ("stop_sequence", "stop"),
                ("max_tokens", "length"),
                ("model_context_window_exceeded", "length"),
                ("tool_use", "tool_calls"),
                ("content_filtered", "content_filter"),
                ("guardrail_intervened", "content_filter"),
                ("malformed_model_output", "stop"),
                ("malformed_tool_use", "stop"),
                ("a_reason_from_the_future", "stop"),
                ("", "stop"),
            ]
        )
        func mapsStopReason(bedrock: String, openAI: String) {
            #expect(FinishReason(bedrockStopReason: bedrock).openAIValue.description == openAI)
            #expect(FinishReason(bedrockStopReason: Array(bedrock.utf8)).openAIValue.description == openAI)
        }

        @Test("compares bytes exactly: prefixes and case do not match")
        func comparesExactly() {
            #expect(FinishReason(bedrockStopReason: "tool_use_") == .stop)
            #expect(FinishReason(bedrockStopReason: "TOOL_USE") == .stop)
            #expect(FinishReason(bedrockStopReason: "max_token") == .stop)
        }
    }
}
