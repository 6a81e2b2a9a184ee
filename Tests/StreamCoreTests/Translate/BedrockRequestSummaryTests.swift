import NIOCore
import StreamCore
import Testing

@Suite
struct BedrockRequestSummaryTests {
    @Test("InvokeModel (Anthropic): messages counted without being built, max_tokens read, any member order")
    func invoke() {
        let body = #"""
            {"anthropic_version":"bedrock-2023-05-31","messages":[{"role":"user","content":[{"type":"text","text":"a \"[\" b"}]},
             {"role":"assistant","content":"x"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"]"}]}]}],
             "system":[{"type":"text","text":"s"}], "max_tokens" : 2048}
            """#
        #expect(BedrockRequestSummary(body: ByteBuffer(string: body)) == BedrockRequestSummary(messageCount: 3, maxTokens: 2048))
    }

    @Test("Converse: inferenceConfig.maxTokens")
    func converse() {
        let body = #"{"inferenceConfig":{"temperature":0.5,"maxTokens":512},"messages":[]}"#
        #expect(BedrockRequestSummary(body: ByteBuffer(string: body)) == BedrockRequestSummary(messageCount: 0, maxTokens: 512))
    }

    @Test("what is not there, or not an integer, or not JSON, is nil")
    func absent() {
        #expect(BedrockRequestSummary(body: ByteBuffer(string: #"{"max_tokens":1.5,"messages":"no"}"#)) == BedrockRequestSummary())
        #expect(BedrockRequestSummary(body: ByteBuffer(string: "not json")) == BedrockRequestSummary())
        #expect(BedrockRequestSummary(body: ByteBuffer()) == BedrockRequestSummary())
        // Read up to the malformed part.
        #expect(BedrockRequestSummary(body: ByteBuffer(string: #"{"max_tokens":9,"messages":[{]}"#)) == BedrockRequestSummary(maxTokens: 9))
    }
}
