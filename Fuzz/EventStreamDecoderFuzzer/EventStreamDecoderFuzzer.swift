import NIOCore
import StreamCore

// libFuzzer entry point for the event-stream decoder (README: Fuzzing).
//
// The first input byte picks how the rest is cut into reads, so the fuzzer explores chunkings as well
// as contents. Besides crashes, hangs and oversized allocations (`-malloc_limit_mb`), it checks two
// properties and traps when one breaks: the result does not depend on the chunking, and every message
// decoded re-encodes to bytes that decode to the same message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEventStreamDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let pattern = Int(data[0])
    var bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    // Random mutations almost never carry valid CRCs, which would keep the fuzzer at the prelude
    // check. With the pattern's high bit set, the CRCs are recomputed so header parsing gets explored.
    if pattern & 0x80 != 0 { fixChecksums(&bytes) }
    return bytes.withUnsafeBufferPointer { check(stream: $0, pattern: pattern) }
}

private func check(stream: UnsafeBufferPointer<UInt8>, pattern: Int) -> CInt {
    let whole = decode(stream, readSize: { _ in Int.max })
    let chunked = decode(stream, readSize: { index in
        // Sizes 0...31 by a pattern that varies per read; 0-byte reads included.
        (pattern &* 31 &+ index &* 7) % 32
    })
    precondition(whole.messages == chunked.messages, "chunking changed the messages")
    precondition(whole.error?.code == chunked.error?.code, "chunking changed the error")
    precondition(whole.error?.streamOffset == chunked.error?.streamOffset, "chunking changed the error offset")
    for message in whole.messages {
        guard let bytes = try? EventStreamEncoder.encode(headers: message.headers, payload: message.payload) else {
            preconditionFailure("a decoded message does not re-encode")
        }
        let again = decode(UnsafeBufferPointer(start: nil, count: 0), extra: bytes, readSize: { _ in Int.max })
        precondition(again.messages == [message] && again.error == nil, "re-encoding changed the message")
    }
    return 0
}

/// Writes correct prelude and message CRCs into every frame the declared lengths delimit.
private func fixChecksums(_ bytes: inout [UInt8]) {
    var offset = 0
    while bytes.count - offset >= 12 {
        let total = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
        let preludeCRC = crc32(bytes[offset..<offset + 8], seed: 0)
        store(preludeCRC, into: &bytes, at: offset + 8)
        guard total >= 16, total <= bytes.count - offset else { return }
        store(crc32(bytes[offset + 8..<offset + total - 4], seed: preludeCRC), into: &bytes, at: offset + total - 4)
        offset += total
    }
}

private func store(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
    for index in 0..<4 {
        bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * index))
    }
}

/// A plain bitwise CRC-32 (IEEE, reflected): independent of the decoder's (Sources/CCRC32).
private func crc32(_ bytes: ArraySlice<UInt8>, seed: UInt32) -> UInt32 {
    var crc = ~seed
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 {
            crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1
        }
    }
    return ~crc
}

private struct Outcome {
    var messages: [EventStreamMessage] = []
    var error: EventStreamError?
}

private func decode(_ stream: UnsafeBufferPointer<UInt8>, extra: ByteBuffer? = nil, readSize: (Int) -> Int) -> Outcome {
    var decoder = EventStreamDecoder()
    var outcome = Outcome()
    var input = extra ?? ByteBuffer(bytes: stream)
    var index = 0
    do {
        while input.readableBytes > 0 {
            let length = min(readSize(index), input.readableBytes)
            index += 1
            // Safe to force unwrap: length <= readableBytes.
            try decoder.feed(input.readSlice(length: length)!)
            while let message = try decoder.next() {
                outcome.messages.append(message)
            }
        }
        try decoder.finish()
    } catch let error as EventStreamError {
        outcome.error = error
    } catch {
        preconditionFailure("the decoder threw a non-EventStreamError")
    }
    return outcome
}

// SwiftPM links an executable target's entry point under `<module>_main` and aliases `main` to it,
// which would hide libFuzzer's own `main`. So that entry point hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("EventStreamDecoderFuzzer_main")
public func fuzzerMain(
    _ argc: CInt,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv) { data, size in fuzzEventStreamDecoder(data, size) }
}
