internal import Hummingbird
internal import NIOCore
internal import StreamCore

/// Thrown from the response body writer to make Hummingbird close the connection mid-body.
struct ScenarioDroppedConnection: Error {}

/// Writes a ``FrameSource`` to the response body, one `write` per frame, and injects the scenario's
/// faults.
///
/// One write per frame even when frames are produced back to back: a gateway in front is measured
/// per chunk, and batching here would hide its behaviour. Each `write` awaits the channel, which is
/// the backpressure: a slow reader slows the simulator, and nothing is buffered beyond one frame.
enum StreamPump {
    static func run(
        _ source: inout some FrameSource,
        scenario: Scenario,
        writer: inout any ResponseBodyWriter,
        recording: RecordingHandle,
        writesDelivered: () async -> Void
    ) async throws {
        let total = source.frameCount
        // Past-the-end counts act after the last frame; a corrupt frame needs a frame to corrupt.
        let exception = scenario.effectiveException.map { (type: $0.type, at: min($0.afterFrames, total)) }
        let corruptAt = scenario.corruptAfter.map { min($0, total - 1) }
        let dropAt = scenario.dropAfter.map { min($0, total) }
        var written = 0
        do {
            for index in 0...total {
                try Task.checkCancellation()
                if let exception, index == exception.at {
                    if index > 0, scenario.gap > .zero { try await Task.sleep(for: scenario.gap) }
                    var frame = ByteBuffer()
                    try EventStreamEncoder.write(
                        headers: FrameHeaders.exception(exception.type),
                        payload: InStreamException.payload(type: exception.type),
                        into: &frame
                    )
                    try await writer.write(frame)
                    written += 1
                    try await writer.finish(nil)
                    recording.end(.inStreamException(exception.type), framesWritten: written)
                    return
                }
                if let dropAt, index == dropAt, corruptAt != index {
                    // The N frames must reach the client before the connection goes.
                    await writesDelivered()
                    recording.end(.droppedByScenario, framesWritten: written)
                    throw ScenarioDroppedConnection()
                }
                guard index < total else { break }
                if index > 0, scenario.gap > .zero { try await Task.sleep(for: scenario.gap) }
                var frame = ByteBuffer()
                frame.reserveCapacity(256)
                guard try source.writeNextFrame(into: &frame) else { break }
                if let corruptAt, index == corruptAt {
                    // Flip the low bit of the message CRC (the last 4 bytes): the prelude and payload
                    // stay valid, so a decoder fails exactly on the message checksum.
                    let crcEnd = frame.writerIndex - 1
                    if let last = frame.getInteger(at: crcEnd, as: UInt8.self) {
                        frame.setInteger(last ^ 0x01, at: crcEnd)
                    }
                    try await writer.write(frame)
                    written += 1
                    try await writer.finish(nil)
                    recording.end(.corruptedByScenario, framesWritten: written)
                    return
                }
                try await writer.write(frame)
                written += 1
                recording.wrote(written)
            }
            try await writer.finish(nil)
            recording.end(.completed, framesWritten: written)
        } catch let error as ScenarioDroppedConnection {
            throw error
        } catch {
            // A failed write means the client closed the connection; cancellation means the server
            // is going away with the client's request. Either way the client did not get it all.
            recording.end(.cancelledByClient, framesWritten: written)
            throw error
        }
    }
}
