package import NIOCore
internal import StreamCore

/// The frames the simulator streams for one request, rendered at once and without a server: what the
/// in-process end-to-end benchmark (Benchmarks/GatewayBenchmarks) feeds the gateway's stream loops,
/// so the bytes are the simulator's own and only the sockets are left out.
///
/// Same plan, same sources, same bytes as the HTTP routes; the scenario's timing and fault keys
/// (`gap_ms`, `first_byte_ms`, `*_after`, `status`) are the pump's and the responder's, so they do not
/// apply here.
package enum SimulatedStream {
    /// Which streaming operation to render.
    package enum Operation: Sendable {
        /// ConverseStream: `body` is a Converse request.
        case converseStream
        /// InvokeModelWithResponseStream for an Anthropic model: `body` is an Anthropic Messages request.
        case invokeWithResponseStream(modelID: String)
    }

    /// Every frame of the answer to `body`, one buffer per frame (the pump writes one per write).
    ///
    /// - Throws: ``ScenarioError`` for a body the simulator would refuse (not a JSON object, or no
    ///   `messages`), with the message the HTTP route would have sent.
    package static func frames(_ operation: Operation, body: ByteBuffer, scenario: Scenario) throws(ScenarioError) -> [ByteBuffer] {
        let json: ParsedJSON
        do {
            json = try ParsedJSON.parse(body)
        } catch {
            throw ScenarioError("the request body is not a JSON object")
        }
        guard json["messages"]?.arrayValue != nil else {
            throw ScenarioError("the request body has no messages")
        }
        let start = ContinuousClock.now
        switch operation {
        case .converseStream:
            let plan = ResponsePlan(scenario: scenario, facts: RequestFacts(body: body, json: json, dialect: .converse))
            var source = ConverseStreamSource(plan: plan, start: start)
            return Self.render(&source)
        case .invokeWithResponseStream(let modelID):
            let model = SimulatorResponder.anthropicModelName(modelID)
            let plan = ResponsePlan(scenario: scenario, facts: RequestFacts(body: body, json: json, dialect: .anthropic))
            var source = InvokeStreamSource(plan: plan, model: model, start: start, firstByteLatency: 0)
            return Self.render(&source)
        }
    }

    private static func render(_ source: inout some FrameSource) -> [ByteBuffer] {
        var frames: [ByteBuffer] = []
        frames.reserveCapacity(source.frameCount)
        while true {
            var frame = ByteBuffer()
            // The sources encode frames they built themselves; a failure here is a simulator bug,
            // and the truncated stream the caller then gets shows it (the gateway reports it).
            guard (try? source.writeNextFrame(into: &frame)) == true else { break }
            frames.append(frame)
        }
        return frames
    }
}
