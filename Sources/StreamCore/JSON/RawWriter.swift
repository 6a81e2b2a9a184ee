package import NIOCore

/// Appends bytes through a raw pointer, for writing a whole SSE chunk with one `ByteBuffer` access.
///
/// Every `ByteBuffer.write…` call checks capacity and uniqueness and pays a dynamic exclusivity check
/// on the buffer's storage; a chunk made of six pieces paid that six times, which profiled as a large
/// part of the per-chunk cost. The caller reserves an upper bound once, then the pieces are copied
/// with plain `memcpy`s.
package struct RawWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    package private(set) var count = 0

    package init(_ buffer: UnsafeMutableRawBufferPointer) {
        // `writeRaw` reserves at least one byte, so the buffer has storage; the fallback keeps an
        // empty reservation harmless (capacity 0: any append traps in its precondition).
        self.base = buffer.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 1)!
        self.capacity = buffer.baseAddress == nil ? 0 : buffer.count
    }

    @inline(__always)
    package mutating func append(_ text: StaticString) {
        let length = text.utf8CodeUnitCount
        precondition(self.count + length <= self.capacity, "RawWriter: reservation too small")
        (self.base + self.count).copyMemory(from: text.utf8Start, byteCount: length)
        self.count += length
    }

    @inline(__always)
    package mutating func append(_ bytes: UnsafeRawBufferPointer) {
        precondition(self.count + bytes.count <= self.capacity, "RawWriter: reservation too small")
        if let source = bytes.baseAddress, bytes.count > 0 {
            (self.base + self.count).copyMemory(from: source, byteCount: bytes.count)
            self.count += bytes.count
        }
    }

    /// Two lowercase hex digits.
    @inline(__always)
    package mutating func appendHexByte(_ byte: UInt8) {
        precondition(self.count + 2 <= self.capacity, "RawWriter: reservation too small")
        let digits: StaticString = "0123456789abcdef"
        self.base.storeBytes(of: digits.utf8Start[Int(byte >> 4)], toByteOffset: self.count, as: UInt8.self)
        self.base.storeBytes(of: digits.utf8Start[Int(byte & 0xF)], toByteOffset: self.count + 1, as: UInt8.self)
        self.count += 2
    }

    /// A non-negative integer in decimal (at most 20 digits).
    @inline(__always)
    package mutating func appendDecimal(_ value: Int) {
        precondition(value >= 0 && self.count + 20 <= self.capacity, "RawWriter: reservation too small")
        var digits = 1
        var probe = value
        while probe >= 10 {
            probe /= 10
            digits += 1
        }
        var rest = value
        for index in stride(from: digits - 1, through: 0, by: -1) {
            self.base.storeBytes(of: UInt8(ascii: "0") + UInt8(rest % 10), toByteOffset: self.count + index, as: UInt8.self)
            rest /= 10
        }
        self.count += digits
    }
}

extension ByteBuffer {
    /// Reserves `maximumLength` bytes and lets `body` append up to that many through a `RawWriter`.
    ///
    /// (Not `writeWithUnsafeMutableBytes`: its `dropFirst` on the storage pointer is a generic call
    /// the optimiser leaves in place, ~80 instructions per chunk.)
    @inline(__always)
    package mutating func writeRaw(maximumLength: Int, _ body: (inout RawWriter) -> Void) {
        let length = max(maximumLength, 1)
        self.reserveCapacity(minimumWritableBytes: length)
        let start = self.writerIndex
        let written = self.withVeryUnsafeMutableBytes { storage in
            // Safe to force unwrap: the reservation above gave the storage at least `length` bytes.
            var writer = RawWriter(UnsafeMutableRawBufferPointer(start: storage.baseAddress! + start, count: length))
            body(&writer)
            return writer.count
        }
        self.moveWriterIndex(forwardBy: written)
    }

    /// The same reservation for a writer of its own: `body` fills at most `maximumLength` bytes at the
    /// pointer and returns how many it wrote (0 leaves the buffer as it was).
    package mutating func writeRawBytes(maximumLength: Int, _ body: (UnsafeMutableRawPointer) -> Int) {
        let length = max(maximumLength, 1)
        self.reserveCapacity(minimumWritableBytes: length)
        let start = self.writerIndex
        let written = self.withVeryUnsafeMutableBytes { storage in
            // Safe to force unwrap: the reservation above gave the storage at least `length` bytes.
            body(storage.baseAddress! + start)
        }
        precondition(written >= 0 && written <= length, "writeRawBytes: wrote outside the reservation")
        self.moveWriterIndex(forwardBy: written)
    }
}
