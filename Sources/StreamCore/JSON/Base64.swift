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
        try self.decode(encoded, readable: readable, appendingTo: &out, level: Self.vectorLevel)
    }

    /// The same, choosing the decoder: `level` 0 for the scalar loop, else at most ``vectorLevel``
    /// (tests run each).
    static func decode(_ encoded: UnsafeRawBufferPointer, readable: Int? = nil, appendingTo out: inout ByteBuffer, level: Int) throws(Failure) {
        guard encoded.count % 4 == 0 else { throw Failure() }
        if encoded.isEmpty { return }
        var isValid = true
        out.writeRawBytes(maximumLength: Self.maximumWrittenCount(encodedCount: encoded.count)) { target -> Int in
            guard let written = Self.decode(encoded, readable: readable, into: target, level: level) else {
                isValid = false
                return 0  // nothing is committed to `out`
            }
            return written
        }
        if !isValid { throw Failure() }
    }

    /// How many bytes ``decode(_:readable:into:)`` may write for `encodedCount` characters: the decoded
    /// bytes and, past them, up to 16 the vector decoder stores and leaves as garbage.
    @inline(__always)
    package static func maximumWrittenCount(encodedCount: Int) -> Int {
        encodedCount / 4 * 3 + 16
    }

    /// Decodes `encoded` into raw memory with room for ``maximumWrittenCount(encodedCount:)`` bytes, for
    /// a caller that decodes straight into the buffer it sends (the Anthropic route's SSE write).
    ///
    /// - Returns: the number of decoded bytes, or `nil` when `encoded` is not padded base64 (`target`
    ///   then holds garbage).
    @inline(__always)
    package static func decode(_ encoded: UnsafeRawBufferPointer, readable: Int? = nil, into target: UnsafeMutableRawPointer) -> Int? {
        self.decode(encoded, readable: readable, into: target, level: Self.vectorLevel)
    }

    /// Decodes the base64 contents of a JSON string that starts at `string`'s first byte (after its
    /// opening quote) and ends at the first `"`: the decode finds the quote as it goes, so the string
    /// is read once. `target` needs room for ``maximumWrittenCount(encodedCount:)`` of `string.count`.
    ///
    /// - Returns: the decoded count and where the closing quote is (an offset in `string`); `nil`
    ///   where the vector decoder is not available, when no quote is found, or when the contents are
    ///   not padded base64 (they may still be a JSON string with escapes: read it another way).
    @inline(__always)
    package static func decode(stringAt string: UnsafeRawBufferPointer, into target: UnsafeMutableRawPointer) -> (count: Int, end: Int)? {
        self.decode(stringAt: string, into: target, level: Self.vectorLevel)
    }

    @inline(__always)
    static func decode(stringAt string: UnsafeRawBufferPointer, into target: UnsafeMutableRawPointer, level: Int) -> (count: Int, end: Int)? {
        guard level > 0, let base = string.baseAddress else { return nil }
        var end = 0
        let count = sluice_base64_decode_string_using(
            Int32(truncatingIfNeeded: level), base.assumingMemoryBound(to: UInt8.self), string.count, target.assumingMemoryBound(to: UInt8.self), &end
        )
        return count >= 0 ? (count, end) : nil
    }

    static func decode(_ encoded: UnsafeRawBufferPointer, readable: Int?, into target: UnsafeMutableRawPointer, level: Int) -> Int? {
        let count = encoded.count
        guard count % 4 == 0 else { return nil }
        if count == 0 { return 0 }
        if level > 0 {
            let written = sluice_base64_decode_using(
                Int32(truncatingIfNeeded: level), encoded.baseAddress.unsafelyUnwrapped.assumingMemoryBound(to: UInt8.self), count,
                max(readable ?? count, count), target.assumingMemoryBound(to: UInt8.self)
            )
            return written >= 0 ? written : nil
        }
        var padding = 0
        if encoded[count - 1] == UInt8(ascii: "=") { padding += 1 }
        if encoded[count - 2] == UInt8(ascii: "=") { padding += 1 }
        let decodedCount = count / 4 * 3 - padding
        return Self.table.withUnsafeBufferPointer { table -> Int? in
            let source = encoded.baseAddress.unsafelyUnwrapped
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
                target.storeBytes(of: UInt8(truncatingIfNeeded: word >> 16), toByteOffset: written, as: UInt8.self)
                target.storeBytes(of: UInt8(truncatingIfNeeded: word >> 8), toByteOffset: written + 1, as: UInt8.self)
                target.storeBytes(of: UInt8(truncatingIfNeeded: word), toByteOffset: written + 2, as: UInt8.self)
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
            if accumulated & 0x80 != 0 { return nil }
            let word = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            target.storeBytes(of: UInt8(truncatingIfNeeded: word >> 16), toByteOffset: written, as: UInt8.self)
            if written + 1 < decodedCount { target.storeBytes(of: UInt8(truncatingIfNeeded: word >> 8), toByteOffset: written + 1, as: UInt8.self) }
            if written + 2 < decodedCount { target.storeBytes(of: UInt8(truncatingIfNeeded: word), toByteOffset: written + 2, as: UInt8.self) }
            return decodedCount
        }
    }

    /// x86_64 with SSSE3: decoded 16 characters at a time by `CBase64`; elsewhere by the loop here.
    static let isVectorDecoderAvailable = Self.vectorLevel > 0

    /// `CBase64`'s decoder for this CPU: 0 none (the loop here decodes), 1 SSSE3, 2 AVX.
    static let vectorLevel = Int(sluice_base64_vector_level())

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
