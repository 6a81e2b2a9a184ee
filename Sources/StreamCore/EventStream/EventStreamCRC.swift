internal import CCRC32

/// CRC-32/ISO-HDLC (the zlib/gzip polynomial), the checksum of every event-stream prelude and message.
///
/// CRC is most of a frame's decode cost, so it is our own C (Sources/CCRC32): carry-less-multiply
/// folding on x86_64 (the speed of ISA-L's `crc32_gzip_refl` on ~200 B frames, several times zlib's
/// `crc32`), the CRC32 instructions on arm64, a slice-by-8 table elsewhere; no system library to
/// install. It takes and returns the same pre/post-conditioned value as zlib's `crc32`, so a CRC can
/// be resumed: `update(b, update(a, 0)) == update(a + b, 0)`. Tests compare it with a bitwise CRC on
/// every length 0–4 KiB and at unaligned starts.
package enum EventStreamCRC {
    package static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        sluice_crc32(crc, bytes.baseAddress, bytes.count)
    }
}
