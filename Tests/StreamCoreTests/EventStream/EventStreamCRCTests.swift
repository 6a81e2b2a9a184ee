import CZlib
import Testing

@testable import StreamCore

struct EventStreamCRCTests {
    private func zlibCRC(_ seed: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { pointer in
            UInt32(crc32(uLong(seed), pointer.baseAddress, uInt(pointer.count)))
        }
    }

    private func isalCRC(_ seed: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { EventStreamCRC.update(seed, $0) }
    }

    @Test("matches the CRC-32/ISO-HDLC check value")
    func checkValue() {
        #expect(self.isalCRC(0, Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(self.isalCRC(0, []) == 0)
    }

    @Test("ISA-L equals zlib on random buffers of every length 0–4 KiB")
    func everyLengthUpTo4KiB() {
        var rng = SeededGenerator(seed: 0x5EED_C4C3)
        let bytes = rng.bytes(4096)
        for length in 0...4096 {
            let slice = Array(bytes[0..<length])
            #expect(self.isalCRC(0, slice) == self.zlibCRC(0, slice), "length \(length)")
        }
    }

    @Test("ISA-L equals zlib on large buffers and at unaligned starts")
    func largeAndUnaligned() {
        var rng = SeededGenerator(seed: 42)
        for length in [65_536, 1_000_003, 16 * 1024 * 1024 + 7] {
            let bytes = rng.bytes(length + 8)
            for start in [0, 1, 3, 7] {
                let slice = Array(bytes[start..<start + length])
                #expect(self.isalCRC(0, slice) == self.zlibCRC(0, slice), "length \(length) start \(start)")
            }
        }
    }

    @Test("resumes from a previous CRC like zlib")
    func resumes() {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            let bytes = rng.bytes(Int.random(in: 0...2048, using: &rng))
            let cut = Int.random(in: 0...bytes.count, using: &rng)
            let head = Array(bytes[..<cut])
            let tail = Array(bytes[cut...])
            #expect(self.isalCRC(self.isalCRC(0, head), tail) == self.zlibCRC(0, bytes))
            #expect(self.isalCRC(0x1234_5678, tail) == self.zlibCRC(0x1234_5678, tail))
        }
    }
}
