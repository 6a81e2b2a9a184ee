internal import CISAL

/// CRC-32/ISO-HDLC (the zlib/gzip polynomial), the checksum of every event-stream prelude and message.
///
/// ISA-L's carry-less-multiply `crc32_gzip_refl` is ~4x zlib's `crc32` on ~200 B frames (DESIGN.md),
/// and CRC is most of a frame's decode cost. It takes and returns the same pre/post-conditioned value
/// as zlib's `crc32`, so a CRC can be resumed: `update(b, update(a, 0)) == update(a + b, 0)`.
/// Tests compare it with zlib on every length 0–4 KiB.
package enum EventStreamCRC {
    package static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return crc32_gzip_refl(crc, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }
}
