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
    ///
    /// Two digits per division (a table of the pairs `00`…`99`): a Responses delta writes its
    /// sequence number, and a digit at a time, counting them first, was ~65 instructions for a
    /// four-digit one.
    @inline(__always)
    package mutating func appendDecimal(_ value: Int) {
        precondition(value >= 0 && self.count + 20 <= self.capacity, "RawWriter: reservation too small")
        var digits = 1
        var probe = value
        while probe >= 100 {
            probe /= 100
            digits += 2
        }
        if probe >= 10 { digits += 1 }
        let table: StaticString =
            "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
        let pairs = UnsafeRawPointer(table.utf8Start)
        var rest = value
        var end = self.count + digits
        while rest >= 100 {
            let pair = rest % 100
            rest /= 100
            end -= 2
            self.base.storeBytes(of: pairs.loadUnaligned(fromByteOffset: pair * 2, as: UInt16.self), toByteOffset: end, as: UInt16.self)
        }
        if rest >= 10 {
            self.base.storeBytes(of: pairs.loadUnaligned(fromByteOffset: rest * 2, as: UInt16.self), toByteOffset: end - 2, as: UInt16.self)
        } else {
            self.base.storeBytes(of: UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest), toByteOffset: end - 1, as: UInt8.self)
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
