import Foundation
import NIOCore
import StreamCore

/// A small deterministic generator (SplitMix64), so a failing property test can be replayed from its
/// printed seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = self.next()
            for _ in 0..<min(8, count - index) {
                out[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return out
    }
}

/// What decoding a whole stream gave: the messages, and the error that ended it, if any.
struct DecodeOutcome {
    var messages: [EventStreamMessage]
    var error: EventStreamError?
}

/// Feeds `bytes` to a fresh decoder in reads of the given sizes (the last read takes the rest), drains
/// it after every read, then declares the end of the stream.
///
/// It lets other tasks run every thousand reads: a megabyte in 1-byte reads takes seconds in a debug
/// build, and a task that long without a suspension holds one of the task pool's threads (as many as
/// the machine has cores: two here), which every other test of the process needs, the in-process
/// gateways and simulators whose time limits then fire included (every full run began with a
/// 20-second stall of all tasks while two such tests ran).
func decodeStream(
    _ bytes: [UInt8],
    readSizes: some Sequence<Int> = [Int.max],
    limits: EventStreamDecoder.Limits = .init()
) async -> DecodeOutcome {
    var decoder = EventStreamDecoder(limits: limits)
    var messages: [EventStreamMessage] = []
    var offset = 0
    var sizes = readSizes.makeIterator()
    var reads = 0
    do {
        while offset < bytes.count {
            let size = min(sizes.next() ?? Int.max, bytes.count - offset)
            try decoder.feed(ByteBuffer(bytes: bytes[offset..<offset + size]))
            offset += size
            while let message = try decoder.next() {
                messages.append(message)
            }
            reads += 1
            if reads % 1000 == 0 { await Task.yield() }
        }
        try decoder.finish()
        return DecodeOutcome(messages: messages, error: nil)
    } catch let error as EventStreamError {
        return DecodeOutcome(messages: messages, error: error)
    } catch {
        fatalError("decoder threw a non-EventStreamError: \(error)")
    }
}

/// Random valid headers covering all ten wire types, with unique names.
func randomHeaders(using rng: inout SeededGenerator, maximumCount: Int = 12) -> [EventStreamHeader] {
    let count = Int.random(in: 0...maximumCount, using: &rng)
    return (0..<count).map { index in
        let name = "h\(index)-" + String(repeating: "x", count: Int.random(in: 0...40, using: &rng))
        let value: EventStreamHeaderValue
        switch Int.random(in: 0...9, using: &rng) {
        case 0: value = .bool(true)
        case 1: value = .bool(false)
        case 2: value = .byte(Int8.random(in: .min ... .max, using: &rng))
        case 3: value = .short(Int16.random(in: .min ... .max, using: &rng))
        case 4: value = .integer(Int32.random(in: .min ... .max, using: &rng))
        case 5: value = .long(Int64.random(in: .min ... .max, using: &rng))
        case 6: value = .byteArray(ByteBuffer(bytes: rng.bytes(Int.random(in: 0...300, using: &rng))))
        case 7: value = .init(string: String(repeating: "é✓a", count: Int.random(in: 0...50, using: &rng)))
        case 8: value = .timestamp(Int64.random(in: .min ... .max, using: &rng))
        default: value = .uuid(ByteBuffer(bytes: rng.bytes(16)))
        }
        return EventStreamHeader(name: name, value: value)
    }
}

/// A random valid stream: its bytes and the messages it holds.
func randomStream(
    using rng: inout SeededGenerator,
    messageCount: Int,
    payloadSizes: ClosedRange<Int>
) throws -> (bytes: [UInt8], messages: [ExpectedMessage]) {
    var buffer = ByteBuffer()
    var messages: [ExpectedMessage] = []
    for _ in 0..<messageCount {
        let headers = randomHeaders(using: &rng)
        let payload = ByteBuffer(bytes: rng.bytes(Int.random(in: payloadSizes, using: &rng)))
        let frame = try EventStreamEncoder.encode(headers: headers, payload: payload)
        buffer.writeImmutableBuffer(frame)
        messages.append(ExpectedMessage(headers: headers, payload: payload))
    }
    return (Array(buffer.readableBytesView), messages)
}

/// A message as a test expects it: headers in wire order and the payload.
struct ExpectedMessage: Equatable {
    var headers: [EventStreamHeader]
    var payload: ByteBuffer

    init(headers: [EventStreamHeader], payload: ByteBuffer) {
        self.headers = headers
        self.payload = payload
    }

    init(_ message: EventStreamMessage) {
        self.headers = Array(message.headers)
        self.payload = message.payload
    }
}

/// Where the shared folder of the workplace lives: `../shared` beside the checkout, or `SLUICE_SHARED_DIR`.
func sharedDirectory() -> URL {
    if let path = ProcessInfo.processInfo.environment["SLUICE_SHARED_DIR"] {
        return URL(fileURLWithPath: path)
    }
    return URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // StreamCoreTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // checkout
        .deletingLastPathComponent()
        .appendingPathComponent("shared")
}
