package import NIOCore

/// Standard base64 (RFC 4648 §4, with padding) decoding into a caller-owned buffer, for the
/// `{"bytes":"…"}` chunks of InvokeModelWithResponseStream. No Foundation, and no allocation once the
/// buffer has grown to the largest chunk.
package enum Base64 {
    package struct Failure: Error, Hashable, Sendable {}

    /// Decodes `encoded` (no whitespace, padded to a multiple of 4) and appends the bytes to `out`.
    package static func decode(_ encoded: UnsafeRawBufferPointer, appendingTo out: inout ByteBuffer) throws(Failure) {
        let count = encoded.count
        guard count % 4 == 0 else { throw Failure() }
        if count == 0 { return }
        var padding = 0
        if encoded[count - 1] == UInt8(ascii: "=") { padding += 1 }
        if encoded[count - 2] == UInt8(ascii: "=") { padding += 1 }
        let decodedCount = count / 4 * 3 - padding
        var isValid = true
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: decodedCount) { target -> Int in
            var written = 0
            var index = 0
            while index < count {
                let a = Self.table[Int(encoded[index])]
                let b = Self.table[Int(encoded[index + 1])]
                let isLast = index + 4 == count
                let c = isLast && padding == 2 ? 0 : Self.table[Int(encoded[index + 2])]
                let d = isLast && padding >= 1 ? 0 : Self.table[Int(encoded[index + 3])]
                if (a | b | c | d) & 0x80 != 0 {
                    isValid = false
                    return 0  // nothing is committed to `out`
                }
                let word = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                target[written] = UInt8(truncatingIfNeeded: word >> 16)
                if written + 1 < decodedCount { target[written + 1] = UInt8(truncatingIfNeeded: word >> 8) }
                if written + 2 < decodedCount { target[written + 2] = UInt8(truncatingIfNeeded: word) }
                written = min(written + 3, decodedCount)
                index += 4
            }
            return written
        }
        if !isValid { throw Failure() }
    }

    /// Maps an ASCII byte to its 6-bit value; 0xFF for bytes outside the alphabet (padding included,
    /// which is handled before the lookup).
    private static let table: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(value)
        }
        return table
    }()
}
