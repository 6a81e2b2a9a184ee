import AsyncHTTPClient
import BedrockSimulator
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// Scenario parsing, and each key's effect over a real socket.
struct ScenarioTests {
    static let model = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0"
    static let converseStream = "/model/\(model)/converse-stream"
    static let invokeStream = "/model/\(model)/invoke-with-response-stream"

    // MARK: Parsing

    @Test("parses every key, with commas or spaces, and JSON values containing both")
    func parsesKeys() throws {
        let scenario = try Scenario(
            parsing: #"chunks=3,chunk_size=5 gap_ms=7 first_byte_ms=9 reasoning=1 tools=2 tool_input={"a": [1, 2], "b":"x,y"} stop=max_tokens status=429 retry_after=3 exception_after=4 exception=throttlingException corrupt_after=5 drop_after=6 stamps=1 cache_read=10 cache_write=11 echo=1"#
        )
        #expect(scenario.chunks == 3)
        #expect(scenario.chunkSize == 5)
        #expect(scenario.gap == .milliseconds(7))
        #expect(scenario.firstByteDelay == .milliseconds(9))
        #expect(scenario.reasoning)
        #expect(scenario.tools == 2)
        #expect(scenario.toolInput == #"{"a":[1,2],"b":"x,y"}"#)
        #expect(scenario.stop == "max_tokens")
        #expect(scenario.status == 429)
        #expect(scenario.retryAfterSeconds == 3)
        #expect(scenario.exceptionAfter == 4)
        #expect(scenario.exception == "throttlingException")
        #expect(scenario.corruptAfter == 5)
        #expect(scenario.dropAfter == 6)
        #expect(scenario.stamps)
        #expect(scenario.cacheReadInputTokens == 10)
        #expect(scenario.cacheWriteInputTokens == 11)
        #expect(scenario.echo)
    }

    @Test(
        "refuses unknown keys and bad values",
        arguments: ["colour=red", "chunks=-1", "chunks=x", "status=418", "stop=because", "reasoning=2", "tool_input=[1]", "tool_input={", "exception=oops", "chunks"]
    )
    func refusesBadScenarios(text: String) {
        #expect(throws: ScenarioError.self) { try Scenario(parsing: text) }
    }

    @Test("a bad scenario is answered 400 ValidationException with a [sim] message")
    func badScenarioOverHTTP() async throws {
        try await Simulator.run { simulator in
            let (response, bytes) = try await simulator.send(
                Self.converseStream, body: Bodies.converse("x"), headers: [("x-sluice-sim-scenario", "chunkz=3")]
            )
            #expect(response.status == .badRequest)
            #expect(response.headers.first(name: "x-amzn-ErrorType")?.hasPrefix("ValidationException:") == true)
            #expect(try JSONValue(parsing: String(buffer: bytes))["message"]?.string?.hasPrefix("[sim]") == true)
        }
    }

    @Test("header beats body directive beats default")
    func precedence() async throws {
        var defaults = Scenario()
        defaults.chunks = 2
        defaults.chunkSize = 3
        try await Simulator.run(defaultScenario: defaults) { simulator in
            func textDeltas(_ body: String, header: String? = nil) async throws -> [String] {
                let (_, bytes) = try await simulator.send(
                    Self.converseStream, body: body, headers: header.map { [("x-sluice-sim-scenario", $0)] } ?? []
                )
                return DecodedStream(bytes).messages.compactMap { $0.json?["delta"]?["text"]?.string }
            }
            let plain = try await textDeltas(Bodies.converse("hello"))
            #expect(plain.count == 2 && plain.allSatisfy { $0.count == 3 })
            let directed = try await textDeltas(Bodies.converse("hello [[sim chunks=4]]"))
            #expect(directed.count == 4 && directed.allSatisfy { $0.count == 3 })
            let headed = try await textDeltas(Bodies.converse("hello [[sim chunks=4 chunk_size=2]]"), header: "chunks=5")
            #expect(headed.count == 5 && headed.allSatisfy { $0.count == 2 })
        }
    }

    // MARK: Content keys

    @Test("chunks and chunk_size shape the text deltas; the same body gives the same text")
    func chunksAndChunkSize() async throws {
        try await Simulator.run { simulator in
            let body = Bodies.converse("shape [[sim chunks=20 chunk_size=7]]")
            let (_, first) = try await simulator.send(Self.converseStream, body: body)
            let (_, second) = try await simulator.send(Self.converseStream, body: body)
            let deltas = DecodedStream(first).messages.compactMap { $0.json?["delta"]?["text"]?.string }
            #expect(deltas.count == 20)
            #expect(deltas.allSatisfy { $0.count == 7 })
            #expect(deltas == DecodedStream(second).messages.compactMap { $0.json?["delta"]?["text"]?.string })
            let usage = DecodedStream(first).messages.last?.json?["usage"]
            #expect(usage?["outputTokens"]?.int == 20)

            let (_, none) = try await simulator.send(Self.converseStream, body: Bodies.converse("[[sim chunks=0]]"))
            #expect(DecodedStream(none).eventTypes == ["messageStart", "messageStop", "metadata"])
        }
    }

    @Test("reasoning=1 streams a signed thinking block first, in both dialects")
    func reasoning() async throws {
        try await Simulator.run { simulator in
            let (_, converse) = try await simulator.send(Self.converseStream, body: Bodies.converse("think [[sim reasoning=1 chunks=2]]"))
            let stream = DecodedStream(converse)
            #expect(
                stream.eventTypes
                    == ["messageStart"] + Array(repeating: "contentBlockDelta", count: 4)
                    + ["contentBlockStop", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
            )
            let reasoning = stream.messages[1...3].compactMap { $0.json?["delta"]?["reasoningContent"]?["text"]?.string }
            #expect(reasoning.count == 3)
            #expect(stream.payloads[1].hasPrefix(#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"#))
            #expect(stream.messages[4].json?["delta"]?["reasoningContent"]?["signature"]?.string?.isEmpty == false)
            #expect(stream.messages[5].json?["contentBlockIndex"]?.int == 0)
            #expect(stream.messages[6].json?["contentBlockIndex"]?.int == 1)
            #expect(stream.messages.last?.json?["usage"]?["outputTokens"]?.int == 5)

            let (_, whole) = try await simulator.send("/model/\(Self.model)/converse", body: Bodies.converse("think [[sim reasoning=1 chunks=2]]"))
            let content = try JSONValue(parsing: String(buffer: whole))["output"]?["message"]?["content"]
            #expect(content?[0]?["reasoningContent"]?["reasoningText"]?["text"]?.string == reasoning.joined())
            #expect(content?[1]?["text"]?.string != nil)

            let (_, invoke) = try await simulator.send(Self.invokeStream, body: Bodies.anthropic("think [[sim reasoning=1 chunks=2]]"))
            let events = DecodedStream(invoke).messages.compactMap(\.anthropicEvent)
            #expect(events[1]["content_block"]?["type"]?.string == "thinking")
            #expect(events[2]["delta"]?["type"]?.string == "thinking_delta")
            #expect(events[5]["delta"]?["type"]?.string == "signature_delta")
            #expect(events[6]["type"]?.string == "content_block_stop")
            #expect(events[7]["content_block"]?["type"]?.string == "text")
            #expect(events[7]["index"]?.int == 1)
        }
    }

    @Test("tools=N streams tool calls named from the request, with inputs in pieces, and stops for tool_use")
    func converseTools() async throws {
        try await Simulator.run { simulator in
            let body = Bodies.converse("weather? [[sim tools=2 chunks=1]]", tools: ["read_file", "bash"])
            let (_, bytes) = try await simulator.send(Self.converseStream, body: body)
            let stream = DecodedStream(bytes)
            #expect(stream.error == nil)
            let starts = stream.messages.filter { $0.headerString(":event-type") == "contentBlockStart" }
            #expect(starts.count == 2)
            #expect(starts.compactMap { $0.json?["start"]?["toolUse"]?["name"]?.string } == ["read_file", "bash"])
            #expect(starts.allSatisfy { $0.json?["start"]?["toolUse"]?["toolUseId"]?.string?.hasPrefix("tooluse_") == true })
            #expect(starts.first.map { String(buffer: $0.payload).hasPrefix(#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"#) } == true)
            for block in [1, 2] {
                let pieces = stream.messages.filter { $0.json?["contentBlockIndex"]?.int == block }
                    .compactMap { $0.json?["delta"]?["toolUse"]?["input"]?.string }
                #expect(pieces.count == 4)
                let input = try JSONValue(parsing: pieces.joined())
                #expect(input["location"]?.string == "Zürich, \"CH\"")
                #expect(input["days"]?.int == 3)
            }
            #expect(stream.messages[stream.messages.count - 2].json?["stopReason"]?.string == "tool_use")
            #expect(stream.messages.last?.json?["usage"]?["outputTokens"]?.int == 1 + 8)

            // Without tools in the request the name is get_weather; tool_input replaces the input,
            // written inside prompt text (so escaped in the JSON body).
            let custom = Bodies.converse(#"go [[sim tools=1 tool_input={"city":"Oslo, NO","n":[1,2]}]]"#)
            let (_, whole) = try await simulator.send("/model/\(Self.model)/converse", body: custom)
            let json = try JSONValue(parsing: String(buffer: whole))
            let toolUse = json["output"]?["message"]?["content"]?[1]?["toolUse"]
            #expect(toolUse?["name"]?.string == "get_weather")
            #expect(toolUse?["input"]?["city"]?.string == "Oslo, NO")
            #expect(toolUse?["input"]?["n"]?[1]?.int == 2)
            #expect(json["stopReason"]?.string == "tool_use")
        }
    }

    @Test("Anthropic tool_use blocks stream input_json_delta pieces")
    func anthropicTools() async throws {
        try await Simulator.run { simulator in
            let body = Bodies.anthropic("go [[sim tools=1 chunks=0]]", tools: ["Bash"])
            let (_, bytes) = try await simulator.send(Self.invokeStream, body: body)
            let events = DecodedStream(bytes).messages.compactMap(\.anthropicEvent)
            #expect(events[1]["content_block"]?["type"]?.string == "tool_use")
            #expect(events[1]["content_block"]?["name"]?.string == "Bash")
            #expect(events[1]["content_block"]?["id"]?.string?.hasPrefix("toolu_bdrk_01") == true)
            #expect(events[1]["index"]?.int == 0)
            let partial = events.filter { $0["delta"]?["type"]?.string == "input_json_delta" }.compactMap { $0["delta"]?["partial_json"]?.string }
            #expect(partial.count == 4)
            #expect(try JSONValue(parsing: partial.joined())["unit"]?.string == "celsius")
            let delta = try #require(events.first { $0["type"]?.string == "message_delta" })
            #expect(delta["delta"]?["stop_reason"]?.string == "tool_use")
            #expect(delta["usage"]?["output_tokens"]?.int == 4)

            let (_, whole) = try await simulator.send("/model/\(Self.model)/invoke", body: body)
            let message = try JSONValue(parsing: String(buffer: whole))
            #expect(message["content"]?[0]?["type"]?.string == "tool_use")
            #expect(message["content"]?[0]?["input"]?["unit"]?.string == "celsius")
            #expect(message["stop_reason"]?.string == "tool_use")
        }
    }

    @Test("a last message carrying a tool result is answered with text only")
    func toolResultEndsTheLoop() async throws {
        try await Simulator.run { simulator in
            let converse = #"{"messages":[{"role":"user","content":[{"text":"go [[sim tools=1]]"}]},{"role":"assistant","content":[{"toolUse":{"toolUseId":"tooluse_a","name":"get_weather","input":{}}}]},{"role":"user","content":[{"toolResult":{"toolUseId":"tooluse_a","content":[{"text":"sunny"}]}}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","inputSchema":{"json":{}}}}]}}"#
            let (_, bytes) = try await simulator.send(Self.converseStream, body: converse)
            let stream = DecodedStream(bytes)
            #expect(!stream.eventTypes.contains("contentBlockStart"))
            #expect(stream.messages[stream.messages.count - 2].json?["stopReason"]?.string == "end_turn")

            let anthropic = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"go [[sim tools=1]]"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"}]}]}"#
            let (_, whole) = try await simulator.send("/model/\(Self.model)/invoke", body: anthropic)
            let message = try JSONValue(parsing: String(buffer: whole))
            #expect(message["stop_reason"]?.string == "end_turn")
            #expect(message["content"]?.array?.count == 1)
            #expect(message["content"]?[0]?["type"]?.string == "text")
        }
    }

    @Test("stop sets the stop reason; stop_sequence reports the request's sequence", arguments: Array(Scenario.stopReasons))
    func stopReasons(stop: String) async throws {
        try await Simulator.run { simulator in
            let body = #"{"inferenceConfig":{"stopSequences":["END"]},"messages":[{"role":"user","content":[{"text":"[[sim stop="# + stop + #"]]"}]}]}"#
            let (_, bytes) = try await simulator.send(Self.converseStream, body: body)
            let stream = DecodedStream(bytes)
            #expect(stream.messages[stream.messages.count - 2].json?["stopReason"]?.string == stop)

            let anthropic = #"{"stop_sequences":["END"],"messages":[{"role":"user","content":"[[sim stop="# + stop + #"]]"}]}"#
            let (_, invoke) = try await simulator.send("/model/\(Self.model)/invoke", body: anthropic)
            let message = try JSONValue(parsing: String(buffer: invoke))
            #expect(message["stop_reason"]?.string == stop)
            if stop == "stop_sequence" {
                #expect(message["stop_sequence"]?.string == "END")
            } else {
                #expect(message["stop_sequence"]?.isNull == true)
            }
        }
    }

    @Test("cache_read and cache_write are reported in both dialects")
    func cacheTokens() async throws {
        try await Simulator.run { simulator in
            let body = Bodies.converse("[[sim cache_read=100 cache_write=20 chunks=2]]")
            let (_, bytes) = try await simulator.send(Self.converseStream, body: body)
            let usage = DecodedStream(bytes).messages.last?.json?["usage"]
            #expect(usage?["cacheReadInputTokens"]?.int == 100)
            #expect(usage?["cacheWriteInputTokens"]?.int == 20)
            #expect(usage?["totalTokens"]?.int == body.utf8.count / 4 + 2 + 120)

            let anthropic = Bodies.anthropic("[[sim cache_read=100 cache_write=20]]")
            let (_, stream) = try await simulator.send(Self.invokeStream, body: anthropic)
            let events = DecodedStream(stream).messages.compactMap(\.anthropicEvent)
            #expect(events[0]["message"]?["usage"]?["cache_read_input_tokens"]?.int == 100)
            #expect(events[0]["message"]?["usage"]?["cache_creation_input_tokens"]?.int == 20)
            #expect(events.last?["amazon-bedrock-invocationMetrics"]?["cacheReadInputTokenCount"]?.int == 100)
        }
    }

    @Test("echo=1 repeats the last user text without the directive")
    func echo() async throws {
        try await Simulator.run { simulator in
            let text = "Say \"this\" back \\ exactly: ✓ 日本語 [[sim echo=1 chunk_size=5]]"
            let (_, bytes) = try await simulator.send(Self.converseStream, body: Bodies.converse(text))
            let deltas = DecodedStream(bytes).messages.compactMap { $0.json?["delta"]?["text"]?.string }
            #expect(deltas.joined() == "Say \"this\" back \\ exactly: ✓ 日本語")
            #expect(deltas.dropLast().allSatisfy { $0.count == 5 })

            let (_, invoke) = try await simulator.send("/model/\(Self.model)/invoke", body: Bodies.anthropic(text))
            #expect(try JSONValue(parsing: String(buffer: invoke))["content"]?[0]?["text"]?.string == "Say \"this\" back \\ exactly: ✓ 日本語")
        }
    }

    // MARK: Errors

    static let statusTypes: [(Int, String)] = [
        (400, "ValidationException"), (403, "AccessDeniedException"), (404, "ResourceNotFoundException"),
        (408, "ModelTimeoutException"), (424, "ModelErrorException"), (429, "ThrottlingException"),
        (500, "InternalServerException"), (503, "ServiceUnavailableException"),
    ]

    @Test("status answers the HTTP error with Bedrock's type", arguments: statusTypes)
    func status(status: Int, type: String) async throws {
        try await Simulator.run { simulator in
            let (response, bytes) = try await simulator.send(
                Self.invokeStream, body: Bodies.anthropic("x"), headers: [("x-sluice-sim-scenario", "status=\(status)")]
            )
            #expect(Int(response.status.code) == status)
            #expect(response.headers.first(name: "x-amzn-ErrorType") == "\(type):http://internal.amazon.com/coral/com.amazon.bedrock/")
            #expect(response.headers.first(name: "Retry-After") == nil)
            let json = try JSONValue(parsing: String(buffer: bytes))
            #expect(json["message"]?.string?.isEmpty == false)
            if status == 424 { #expect(json["originalStatusCode"]?.int == 500) }
            let entry = try #require(try await simulator.recorder.waitForEndings(count: 1).first)
            #expect(entry.ending == .error(status: status))
        }
    }

    @Test("retry_after adds Retry-After to a throttling answer")
    func retryAfter() async throws {
        try await Simulator.run { simulator in
            let (response, _) = try await simulator.send(
                "/model/\(Self.model)/converse", body: Bodies.converse("x [[sim status=429 retry_after=3]]")
            )
            #expect(response.status == .tooManyRequests)
            #expect(response.headers.first(name: "Retry-After") == "3")
        }
    }

    @Test("instance faults: an exact share of model requests refused with the status and Retry-After, a slow first byte, changed at run time")
    func instanceFaults() async throws {
        let faults = SimulatorFaults(.init(failurePercent: 30, status: 503, retryAfterSeconds: 2))
        try await Simulator.run(faults: faults) { simulator in
            var refused: [Int] = []
            for index in 1...10 {
                let (response, _) = try await simulator.send("/model/\(Self.model)/converse", body: Bodies.converse("x"))
                if response.status != .ok {
                    #expect(response.status == .serviceUnavailable)
                    #expect(response.headers.first(name: "Retry-After") == "2")
                    refused.append(index)
                }
            }
            #expect(refused == [4, 7, 10])
            // The inference-profile listing is not a model request: it always answers.
            faults.set(.init(failurePercent: 100, firstByteDelay: .milliseconds(300)))
            #expect(try await simulator.send("/inference-profiles", method: .GET).response.status == .ok)
            let started = ContinuousClock.now
            let (throttled, _) = try await simulator.send("/model/\(Self.model)/converse-stream", body: Bodies.converse("x"))
            #expect(throttled.status == .tooManyRequests)
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            faults.set(.init())
            #expect(try await simulator.send("/model/\(Self.model)/converse", body: Bodies.converse("x")).response.status == .ok)
        }
    }

    @Test(
        "exception_after sends one exception frame after N frames, then ends the body",
        arguments: ["throttlingException", "modelStreamErrorException", "internalServerException", "validationException", "serviceUnavailableException"]
    )
    func exceptionAfter(exception: String) async throws {
        try await Simulator.run { simulator in
            let (response, bytes) = try await simulator.send(
                Self.invokeStream, body: Bodies.anthropic("x"),
                headers: [("x-sluice-sim-scenario", "exception_after=3,exception=\(exception)")]
            )
            #expect(response.status == .ok)
            let stream = DecodedStream(bytes)
            #expect(stream.error == nil)
            #expect(stream.messages.count == 4)
            let last = try #require(stream.messages.last)
            #expect(last.headerNames == [":exception-type", ":content-type", ":message-type"])
            #expect(last.headerString(":message-type") == "exception")
            #expect(last.headerString(":exception-type") == exception)
            let payload = try #require(last.json)
            #expect(payload["message"]?.string?.isEmpty == false)
            if exception == "modelStreamErrorException" {
                #expect(payload["originalStatusCode"]?.int == 500)
                #expect(payload["originalMessage"]?.string != nil)
            }
            let entry = try #require(try await simulator.recorder.waitForEndings(count: 1).first)
            #expect(entry.ending == .inStreamException(exception))
            #expect(entry.framesWritten == 4)
        }
    }

    @Test("corrupt_after sends N good frames and exactly one with a bad message CRC")
    func corruptAfter() async throws {
        try await Simulator.run { simulator in
            let (_, bytes) = try await simulator.send(
                Self.converseStream, body: Bodies.converse("x [[sim corrupt_after=2]]")
            )
            let stream = DecodedStream(bytes)
            #expect(stream.messages.count == 2)
            #expect(stream.error?.code == .messageChecksum)
            // The bad frame is the last thing in the body: its prelude is valid and it ends the body.
            var reader = bytes
            for _ in 0..<2 {
                let length = try #require(reader.getInteger(at: reader.readerIndex, as: UInt32.self))
                reader.moveReaderIndex(forwardBy: Int(length))
            }
            let badLength = try #require(reader.getInteger(at: reader.readerIndex, as: UInt32.self))
            #expect(Int(badLength) == reader.readableBytes)
            let entry = try #require(try await simulator.recorder.waitForEndings(count: 1).first)
            #expect(entry.ending == .corruptedByScenario)
            #expect(entry.framesWritten == 3)
        }
    }

    @Test("drop_after closes the connection mid-body")
    func dropAfter() async throws {
        try await Simulator.run { simulator in
            let response = try await simulator.start(Self.converseStream, body: Bodies.converse("x [[sim drop_after=3]]"))
            #expect(response.status == .ok)
            var received = ByteBuffer()
            await #expect(throws: (any Error).self) {
                for try await part in response.body { received.writeImmutableBuffer(part) }
            }
            // Only whole frames arrive before the drop, and nothing after them. How many of the three
            // the client gets depends on it: a TCP reset makes the receiving kernel discard bytes the
            // client had not read yet (seen under load in CI), so the count is bounded, not exact;
            // the recorder below says what the simulator wrote.
            let stream = DecodedStream(received)
            #expect(stream.error == nil)
            #expect(stream.messages.count <= 3)
            let entry = try #require(try await simulator.recorder.waitForEndings(count: 1).first)
            #expect(entry.ending == .droppedByScenario)
            #expect(entry.framesWritten == 3)
        }
    }

    // MARK: Timing

    @Test("stamps prefix each text delta with a monotonic CLOCK_MONOTONIC time")
    func stamps() async throws {
        try await Simulator.run { simulator in
            let before = MonotonicClock.nanoseconds()
            let (_, bytes) = try await simulator.send(Self.converseStream, body: Bodies.converse("[[sim stamps=1 chunks=10 chunk_size=4]]"))
            let after = MonotonicClock.nanoseconds()
            let deltas = DecodedStream(bytes).messages.compactMap { $0.json?["delta"]?["text"]?.string }
            #expect(deltas.count == 10)
            var stamps: [UInt64] = []
            for delta in deltas {
                #expect(delta.hasPrefix("⟦t="))
                let inner = try #require(delta.dropFirst(3).split(separator: "⟧", maxSplits: 1).first)
                stamps.append(try #require(UInt64(inner)))
                #expect(delta.split(separator: "⟧", maxSplits: 1).last?.count == 4)
            }
            #expect(stamps == stamps.sorted())
            #expect(stamps.allSatisfy { (before...after).contains($0) })

            let (_, invoke) = try await simulator.send(Self.invokeStream, body: Bodies.anthropic("[[sim stamps=1 chunks=3]]"))
            let texts = DecodedStream(invoke).messages.compactMap(\.anthropicEvent).compactMap { $0["delta"]?["text"]?.string }
            #expect(texts.count == 3 && texts.allSatisfy { $0.hasPrefix("⟦t=") })
        }
    }

    @Test("with gap_ms frames arrive one by one: the first long before the last is sent")
    func incremental() async throws {
        try await Simulator.run { simulator in
            let clock = ContinuousClock()
            let response = try await simulator.start(Self.converseStream, body: Bodies.converse("[[sim chunks=10 gap_ms=100]]"))
            var decoder = EventStreamDecoder()
            var arrivals: [ContinuousClock.Instant] = []
            for try await part in response.body {
                try decoder.feed(part)
                while try decoder.next() != nil { arrivals.append(clock.now) }
            }
            try decoder.finish()
            #expect(arrivals.count == 14)
            // 13 gaps of 100 ms lie between the first frame and the last: demand under a third of that.
            let spread = try #require(arrivals.last) - (try #require(arrivals.first))
            #expect(spread > .milliseconds(400))
        }
    }

    @Test("a client that stops reading stops the simulator: frames are produced as they are taken")
    func backpressure() async throws {
        try await Simulator.run { simulator in
            // ~25 MB of frames: far more than the socket buffers and the client's read-ahead hold.
            let response = try await simulator.start(
                Self.converseStream, body: Bodies.converse("[[sim chunks=20000 chunk_size=1000 stamps=1]]")
            )
            var iterator = response.body.makeAsyncIterator()
            var received = try #require(try await iterator.next())
            let pauseStart = MonotonicClock.nanoseconds()
            try await Task.sleep(for: .milliseconds(500))
            let pauseEnd = MonotonicClock.nanoseconds()
            while let part = try await iterator.next() { received.writeImmutableBuffer(part) }
            let stream = DecodedStream(received)
            #expect(stream.error == nil)
            #expect(stream.messages.count == 20_004)
            func stamp(_ message: EventStreamMessage?) -> UInt64? {
                guard let text = message?.json?["delta"]?["text"]?.string, text.hasPrefix("⟦t=") else { return nil }
                return text.dropFirst(3).split(separator: "⟧", maxSplits: 1).first.flatMap { UInt64($0) }
            }
            let first = try #require(stamp(stream.messages[1]))
            let last = try #require(stamp(stream.messages[20_000]))
            #expect(first < pauseStart)
            // Had the simulator buffered the response, every frame would have been made during the pause.
            #expect(last > pauseEnd)
        }
    }

    @Test("first_byte_ms delays the response head")
    func firstByteDelay() async throws {
        try await Simulator.run { simulator in
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await simulator.start(Self.converseStream, body: Bodies.converse("[[sim first_byte_ms=300]]"))
            #expect(clock.now - start >= .milliseconds(300))
            _ = try await response.body.collect(upTo: 1 << 20)
        }
    }

    @Test("a client that goes away mid-stream is recorded as cancelledByClient")
    func cancellation() async throws {
        try await Simulator.run { simulator in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let response = try await simulator.start(Self.converseStream, body: Bodies.converse("[[sim chunks=1000 gap_ms=20]]"))
                    var frames = 0
                    var decoder = EventStreamDecoder()
                    for try await part in response.body {
                        try decoder.feed(part)
                        while try decoder.next() != nil { frames += 1 }
                        if frames >= 3 { break }
                    }
                    // Leaving the loop early drops the body: AsyncHTTPClient cancels the request.
                }
                try await group.next()
                group.cancelAll()
            }
            let entry = try #require(try await simulator.recorder.waitForEndings(count: 1, timeout: .seconds(15)).first)
            #expect(entry.ending == .cancelledByClient)
            #expect(entry.framesWritten < 1000)
        }
    }
}
