import CBase64
package import NIOCore

/// Standard base64 (RFC 4648 §4, with padding) decoding into a caller-owned buffer, for the
/// `{"bytes":"…"}` chunks of InvokeModelWithResponseStream. No Foundation, and no allocation once the
/// buffer has grown to the largest chunk.
package enum Base64 {
    package struct Failure: Error, Hashable, Sendable {}

    /// Decodes `encoded` (no whitespace, padded to a multiple of 4) and appends the bytes to `out`;
    /// on failure nothing is appended. `readable`: how many bytes from `encoded`'s start may be read
    /// (more than its count when it is a slice of a larger buffer, which spares the vector decoder a
    /// copy of the last block).
    package static func decode(_ encoded: UnsafeRawBufferPointer, readable: Int? = nil, appendingTo out: inout ByteBuffer) throws(Failure) {
        try self.decode(encoded, readable: readable, appendingTo: &out, vector: Self.isVectorDecoderAvailable)
    }

    /// The same, choosing the decoder: `vector` only where ``isVectorDecoderAvailable`` (tests run both).
    static func decode(_ encoded: UnsafeRawBufferPointer, readable: Int? = nil, appendingTo out: inout ByteBuffer, vector: Bool) throws(Failure) {
        let count = encoded.count
        guard count % 4 == 0 else { throw Failure() }
        if count == 0 { return }
        var padding = 0
        if encoded[count - 1] == UInt8(ascii: "=") { padding += 1 }
        if encoded[count - 2] == UInt8(ascii: "=") { padding += 1 }
        let decodedCount = count / 4 * 3 - padding
        var isValid = true
        if vector {
            // 16 bytes of slack: every block the vector decoder decodes is a 16-byte store.
            out.writeRawBytes(maximumLength: decodedCount + 16) { target -> Int in
                let written = sluice_base64_decode(
                    encoded.baseAddress.unsafelyUnwrapped.assumingMemoryBound(to: UInt8.self), count, max(readable ?? count, count),
                    target.assumingMemoryBound(to: UInt8.self)
                )
                guard written >= 0 else {
                    isValid = false
                    return 0  // nothing is committed to `out`
                }
                return written
            }
            if !isValid { throw Failure() }
            return
        }
        _ = Self.table.withUnsafeBufferPointer { table in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: decodedCount) { target -> Int in
                let source = encoded.baseAddress.unsafelyUnwrapped
                let destination = target.baseAddress.unsafelyUnwrapped
                var accumulated: UInt8 = 0
                var written = 0
                var index = 0
                for _ in 0..<count / 4 - 1 {
                    let a = table[Int(source.load(fromByteOffset: index, as: UInt8.self))]
                    let b = table[Int(source.load(fromByteOffset: index + 1, as: UInt8.self))]
                    let c = table[Int(source.load(fromByteOffset: index + 2, as: UInt8.self))]
                    let d = table[Int(source.load(fromByteOffset: index + 3, as: UInt8.self))]
                    accumulated |= a | b | c | d
                    let word = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    destination.storeBytes(of: UInt8(truncatingIfNeeded: word >> 16), toByteOffset: written, as: UInt8.self)
                    destination.storeBytes(of: UInt8(truncatingIfNeeded: word >> 8), toByteOffset: written + 1, as: UInt8.self)
                    destination.storeBytes(of: UInt8(truncatingIfNeeded: word), toByteOffset: written + 2, as: UInt8.self)
                    written += 3
                    index += 4
                }
                // The last quad: `=` padding decodes to nothing.
                let a = table[Int(encoded[index])]
                let b = table[Int(encoded[index + 1])]
                let c = padding == 2 ? 0 : table[Int(encoded[index + 2])]
                let d = padding >= 1 ? 0 : table[Int(encoded[index + 3])]
                accumulated |= a | b | c | d
                // A byte outside the alphabet maps to 0xFF: any high bit seen means invalid input.
                if accumulated & 0x80 != 0 {
                    isValid = false
                    return 0  // nothing is committed to `out`
                }
                let word = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                destination.storeBytes(of: UInt8(truncatingIfNeeded: word >> 16), toByteOffset: written, as: UInt8.self)
                if written + 1 < decodedCount { destination.storeBytes(of: UInt8(truncatingIfNeeded: word >> 8), toByteOffset: written + 1, as: UInt8.self) }
                if written + 2 < decodedCount { destination.storeBytes(of: UInt8(truncatingIfNeeded: word), toByteOffset: written + 2, as: UInt8.self) }
                return decodedCount
            }
        }
        if !isValid { throw Failure() }
    }

    /// x86_64 with SSSE3: decoded 16 characters at a time by `CBase64`; elsewhere by the loop here.
    static let isVectorDecoderAvailable = sluice_base64_is_available() != 0

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
