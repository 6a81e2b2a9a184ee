import Testing

@testable import StreamCore

struct EventStreamCRCTests {
    /// The definition, one bit at a time (reflected polynomial 0xEDB88320, zlib's conditioning): slow,
    /// but short enough to check by eye, and it shares nothing with Sources/CCRC32.
    private static func bitwiseCRC(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var state = ~crc
        for byte in bytes {
            state = Self.bitwiseStep(state, byte)
        }
        return ~state
    }

    /// One byte into an inverted CRC register.
    private static func bitwiseStep(_ state: UInt32, _ byte: UInt8) -> UInt32 {
        var state = state ^ UInt32(byte)
        for _ in 0..<8 {
            state = state & 1 == 1 ? (state >> 1) ^ 0xEDB8_8320 : state >> 1
        }
        return state
    }

    private func crc(_ seed: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { EventStreamCRC.update(seed, $0) }
    }

    private func reference(_ seed: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { Self.bitwiseCRC(seed, $0) }
    }

    /// Random bytes in storage aligned to 64, so that `start` is exactly the misalignment.
    private func withAlignedBytes<Result>(
        _ count: Int,
        seed: UInt64,
        _ body: (UnsafeRawBufferPointer) -> Result
    ) -> Result {
        var rng = SeededGenerator(seed: seed)
        let bytes = rng.bytes(count)
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
        defer { storage.deallocate() }
        bytes.withUnsafeBytes { storage.copyMemory(from: $0) }
        return body(UnsafeRawBufferPointer(storage))
    }

    @Test("matches the CRC-32/ISO-HDLC check value")
    func checkValue() {
        #expect(self.crc(0, Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(self.reference(0, Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(self.crc(0, []) == 0)
        #expect(self.crc(0xDEAD_BEEF, []) == 0xDEAD_BEEF)
        #expect(EventStreamCRC.update(0x1234_5678, UnsafeRawBufferPointer(start: nil, count: 0)) == 0x1234_5678)
    }

    @Test("equals a bitwise CRC on every length 0–4 KiB at every start 0–15 bytes past a 64-byte boundary")
    func everyLengthAndStart() {
        // Each implementation has its own short-input, block and tail paths (under 16 bytes, 16-63,
        // 64 and up, 1-15 bytes left over), so every length meets each of them at every misalignment.
        self.withAlignedBytes(4096 + 15, seed: 0x5EED_C4C3) { bytes in
            for start in 0..<16 {
                // The reference for every prefix in one pass: a CRC resumes byte by byte.
                var state = ~UInt32(0)
                for length in 0...4096 {
                    if length > 0 {
                        state = Self.bitwiseStep(state, bytes[start + length - 1])
                    }
                    let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<start + length])
                    #expect(EventStreamCRC.update(0, slice) == ~state, "length \(length) start \(start)")
                }
            }
        }
    }

    @Test("equals a bitwise CRC on large buffers at unaligned starts")
    func largeAndUnaligned() {
        for length in [65_536, 1_000_003] {
            self.withAlignedBytes(length + 8, seed: 42) { bytes in
                for start in [0, 1, 3, 7] {
                    let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<start + length])
                    #expect(EventStreamCRC.update(0, slice) == Self.bitwiseCRC(0, slice), "length \(length) start \(start)")
                }
            }
        }
    }

    @Test("resumes from a previous CRC like the bitwise definition")
    func resumes() {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            let bytes = rng.bytes(Int.random(in: 0...2048, using: &rng))
            let cut = Int.random(in: 0...bytes.count, using: &rng)
            let head = Array(bytes[..<cut])
            let tail = Array(bytes[cut...])
            #expect(self.crc(self.crc(0, head), tail) == self.reference(0, bytes))
            #expect(self.crc(0x1234_5678, tail) == self.reference(0x1234_5678, tail))
        }
    }
}
