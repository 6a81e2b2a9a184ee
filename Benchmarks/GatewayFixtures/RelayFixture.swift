public import NIOCore
import BedrockSimulator
import Gateway
import HTTPTypes
import Hummingbird
import Logging
import StreamCore

#if canImport(Glibc)
import Glibc
#endif

// The in-process end-to-end stream (issue 6), shared by GatewayBenchmarks and Tools/GatewayProfile
// (callgrind's instruction counts): the simulator's own frames for a 1,000-delta answer, fed read by
// read to the gateway's stream loops (`StreamRelay`, the code the routes run: decode, both CRCs,
// translate or verify and meter, the per-chunk metric, one write per read), into a writer that keeps
// only what the check needs. No sockets and no HTTP on either side, so what is left is the gateway's
// own work per stream and per chunk. Every stream's result is checked (finish reason, usage, the
// end of the last write), so a loop that stopped translating fails instead of getting faster.

/// One answer's frames, rendered once by the simulator, and what a stream's check expects of it.
public struct RelayFixture: Sendable {
    public static let deltas = 1_000

    public let frames: [ByteBuffer]
    let options: ChatChunkTranslator.Options
    let metrics: GatewayMetrics
    let logger: Logger

    /// A Converse request as the gateway maps a one-message chat; the answer is 1,000 text deltas of
    /// 12 characters (the simulator's corpus: quotes, backslashes, non-ASCII), as a coding tool gets.
    public static func converse() throws -> RelayFixture {
        let body = ByteBuffer(string: #"{"messages":[{"role":"user","content":[{"text":"Write the parser."}]}]}"#)
        let scenario = try Scenario(parsing: "chunks=\(deltas)")
        return Self(frames: try SimulatedStream.frames(.converseStream, body: body, scenario: scenario))
    }

    /// An Anthropic Messages request as Claude Code sends on its Bedrock backend.
    public static func invoke() throws -> RelayFixture {
        let body = ByteBuffer(
            string: #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":4096,"messages":[{"role":"user","content":"Write the parser."}]}"#
        )
        let scenario = try Scenario(parsing: "chunks=\(deltas)")
        let operation = SimulatedStream.Operation.invokeWithResponseStream(modelID: "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        return Self(frames: try SimulatedStream.frames(operation, body: body, scenario: scenario))
    }

    private init(frames: [ByteBuffer]) {
        self.frames = frames
        self.options = ChatChunkTranslator.Options(id: "chatcmpl-benchmark0000000000000", created: 1_764_000_000, model: "claude-sonnet")
        self.metrics = GatewayMetrics()
        var logger = Logger(label: "sluice-bench")
        logger.logLevel = .error
        self.logger = logger
    }

    /// One whole stream through `POST /v1/chat/completions`'s loop, checked.
    public func relayChatCompletion() async throws {
        let log = WriteLog(expectedEnd: "data: [DONE]\n\n")
        var writer: any ResponseBodyWriter = CheckingWriter(log: log)
        let ending = try await StreamRelay.chatCompletions(
            upstream: FrameReads(frames: self.frames), options: self.options, metrics: self.metrics, writer: &writer, logger: self.logger
        )
        try self.check(ending, log)
    }

    /// One whole stream through the `/bedrock` streaming routes' loop (`invoke` for the frames of
    /// ``invoke()``), checked.
    public func relayBedrock(invoke: Bool) async throws {
        let log = WriteLog(expectedEnd: nil)
        var writer: any ResponseBodyWriter = CheckingWriter(log: log)
        let ending = try await StreamRelay.bedrock(
            upstream: FrameReads(frames: self.frames), operation: invoke ? .invokeWithResponseStream : .converseStream,
            metrics: self.metrics, writer: &writer, logger: self.logger
        )
        try self.check(ending, log)
    }

    /// The stream completed, its usage came through, and the last write is what it should be.
    private func check(_ ending: StreamRelay.Ending, _ log: WriteLog) throws {
        guard log.finished, log.writes > 0 else {
            throw RelayCheckFailure(description: "the stream did not finish")
        }
        guard ending.finishReason == "stop" || ending.finishReason == "end_turn", let usage = ending.usage, usage.outputTokens == Self.deltas
        else {
            throw RelayCheckFailure(description: "finish reason \(ending.finishReason ?? "none"), usage \(String(describing: ending.usage))")
        }
        if log.expectedEnd != nil, !log.lastWriteEndsRight {
            throw RelayCheckFailure(description: "the last write does not end with the stream's end")
        }
    }
}

/// The upstream body: the frames as one read each, as the simulator writes them.
private struct FrameReads: AsyncSequence {
    typealias Element = ByteBuffer
    typealias Failure = any Error

    let frames: [ByteBuffer]

    struct AsyncIterator: AsyncIteratorProtocol {
        let frames: [ByteBuffer]
        var index = 0

        mutating func next() async throws -> ByteBuffer? {
            guard self.index < self.frames.count else { return nil }
            defer { self.index += 1 }
            return self.frames[self.index]
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(frames: self.frames)
    }
}

/// What the loop wrote: how many writes, whether it finished, and whether the last write ended with
/// the expected end. It keeps no buffer, as a socket writer lets each go once written.
private final class WriteLog {
    let expectedEnd: StaticString?
    var writes = 0
    var finished = false
    var lastWriteEndsRight = false

    init(expectedEnd: StaticString?) {
        self.expectedEnd = expectedEnd
    }

    func record(_ buffer: ByteBuffer) {
        self.writes += 1
        guard let end = self.expectedEnd else { return }
        let count = end.utf8CodeUnitCount
        // memcmp, not a collection comparison: this runs per write, inside the measured loop.
        self.lastWriteEndsRight = buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress, bytes.count >= count else { return false }
            return memcmp(base + (bytes.count - count), end.utf8Start, count) == 0
        }
    }
}

/// The response body writer the loops write to; `finish` is consuming, so the log is a reference.
private struct CheckingWriter: ResponseBodyWriter {
    let log: WriteLog

    mutating func write(_ buffer: ByteBuffer) async throws {
        self.log.record(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        self.log.finished = true
    }
}

private struct RelayCheckFailure: Error, CustomStringConvertible {
    var description: String
}
