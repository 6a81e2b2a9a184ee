package import NIOCore
internal import Synchronization

/// A log of every request the simulator received and how each response ended.
///
/// Tests and the load generator pass one in ``SimulatorConfiguration/recorder`` and read it back.
/// An entry is added when the request body has been read (before any scenario delay) and gets its
/// ``Entry/ending`` when the response is over, so a test can wait for requests that are still
/// streaming.
///
/// ```swift
/// let recorder = SimulatorRecorder()
/// // … run the simulator with it, send two requests …
/// let entries = try await recorder.waitForEndings(count: 2, timeout: .seconds(5))
/// #expect(entries[0].ending == .completed)
/// ```
///
/// - Important: entries keep the headers as received, `Authorization` included, and whole bodies.
///   It is a test tool: never enable it where real credentials or prompts pass.
package final class SimulatorRecorder: Sendable {
    /// The Bedrock operation a request addressed.
    package enum Operation: String, Sendable, Hashable {
        case converse
        case converseStream
        case invokeModel
        case invokeModelWithResponseStream
        case countTokens
        case listInferenceProfiles
        case getInferenceProfile
        case unknown
    }

    /// How a response ended.
    package enum Ending: Sendable, Hashable {
        /// The whole response was handed to the server (non-streaming) or written and finished (streaming).
        case completed
        /// A body write failed or the task was cancelled: the client went away mid-response.
        case cancelledByClient
        /// `drop_after`: the connection was closed without ending the body.
        case droppedByScenario
        /// `corrupt_after`: a frame with a bad message CRC was sent, then the body ended.
        case corruptedByScenario
        /// `exception_after`: an in-stream exception frame of this type was sent, then the body ended.
        case inStreamException(String)
        /// An HTTP error answered the request (authentication, routing, validation or `status`).
        case error(status: Int)
    }

    /// One header as received (name in its original case).
    package struct Header: Sendable, Hashable {
        package var name: String
        package var value: String
    }

    /// One request and its outcome.
    package struct Entry: Sendable {
        /// Arrival order, from 0.
        package var sequenceNumber: Int
        package var method: String
        /// The path exactly as received, query included.
        package var path: String
        /// The percent-decoded model id of `/model/{modelId}/…` routes.
        package var modelID: String?
        package var operation: Operation
        package var headers: [Header]
        /// The request body, byte for byte.
        package var body: ByteBuffer
        /// `nil` while the response is still being produced.
        package var ending: Ending?
        /// Event-stream frames written so far (streaming routes), counting a corrupt or exception
        /// frame: it grows while the stream runs, so a test can see a stream held back mid-way.
        package var framesWritten: Int

        /// The first value of the header called `name` (case-insensitive).
        package func header(_ name: String) -> String? {
            let lowered = name.lowercased()
            return self.headers.first { $0.name.lowercased() == lowered }?.value
        }
    }

    /// `waitFor…` gave up.
    package struct Timeout: Error, CustomStringConvertible {
        package var description: String
    }

    private let state = Mutex<[Entry]>([])

    package init() {}

    /// Every entry so far, in arrival order.
    package var entries: [Entry] {
        self.state.withLock { $0 }
    }

    /// Waits until at least `count` requests have arrived, and returns all entries.
    package func waitForRequests(count: Int, timeout: Duration = .seconds(10)) async throws -> [Entry] {
        try await self.wait(timeout: timeout, what: "\(count) requests") { entries in
            entries.count >= count
        }
    }

    /// Waits until at least `count` responses have ended, and returns all entries.
    package func waitForEndings(count: Int, timeout: Duration = .seconds(10)) async throws -> [Entry] {
        try await self.wait(timeout: timeout, what: "\(count) responses to end") { entries in
            entries.lazy.filter { $0.ending != nil }.count >= count
        }
    }

    private func wait(timeout: Duration, what: String, until isDone: ([Entry]) -> Bool) async throws -> [Entry] {
        let deadline = ContinuousClock.now + timeout
        // Polling keeps the lock free of continuations; a test helper can afford 5 ms steps.
        while true {
            let entries = self.entries
            if isDone(entries) { return entries }
            guard ContinuousClock.now < deadline else {
                throw Timeout(description: "timed out after \(timeout) waiting for \(what); have \(entries.count) entries")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func begin(
        method: String,
        path: String,
        modelID: String?,
        operation: Operation,
        headers: [Header],
        body: ByteBuffer
    ) -> Int {
        self.state.withLock { entries in
            let number = entries.count
            entries.append(
                Entry(
                    sequenceNumber: number, method: method, path: path, modelID: modelID, operation: operation,
                    headers: headers, body: body, ending: nil, framesWritten: 0
                )
            )
            return number
        }
    }

    func wrote(_ sequenceNumber: Int, framesWritten: Int) {
        self.state.withLock { entries in
            guard entries.indices.contains(sequenceNumber), entries[sequenceNumber].ending == nil else { return }
            entries[sequenceNumber].framesWritten = framesWritten
        }
    }

    func end(_ sequenceNumber: Int, _ ending: Ending, framesWritten: Int = 0) {
        self.state.withLock { entries in
            // The first ending wins: a write failure after a scenario fault must not overwrite it.
            guard entries.indices.contains(sequenceNumber), entries[sequenceNumber].ending == nil else { return }
            entries[sequenceNumber].ending = ending
            entries[sequenceNumber].framesWritten = framesWritten
        }
    }
}

/// The recorder's handle on one request; a no-op when recording is off.
struct RecordingHandle: Sendable {
    let recorder: SimulatorRecorder?
    let sequenceNumber: Int

    func end(_ ending: SimulatorRecorder.Ending, framesWritten: Int = 0) {
        self.recorder?.end(self.sequenceNumber, ending, framesWritten: framesWritten)
    }

    /// The frames written so far (the count an ending reports comes with it).
    func wrote(_ framesWritten: Int) {
        self.recorder?.wrote(self.sequenceNumber, framesWritten: framesWritten)
    }
}
