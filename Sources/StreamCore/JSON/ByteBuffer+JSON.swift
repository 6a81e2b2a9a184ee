package import NIOCore

extension ByteBuffer {
    /// Writes `text` as a quoted JSON string, escaping what JSON requires (quote, backslash, control
    /// characters) and nothing else. For values known once per stream or per error (ids, model
    /// names, messages), not for per-chunk deltas, which are spliced as the escaped bytes they came as.
    package mutating func writeJSONString(_ text: some StringProtocol) {
        self.writeInteger(UInt8(ascii: "\""))
        self.writeJSONStringContents(text)
        self.writeInteger(UInt8(ascii: "\""))
    }

    /// Writes the escaped contents of a JSON string, without quotes.
    package mutating func writeJSONStringContents(_ text: some StringProtocol) {
        var text = String(text)
        text.withUTF8 { self.writeJSONEscaped(UnsafeRawBufferPointer($0)) }
    }

    /// Writes `bytes` (UTF-8) escaped for the inside of a JSON string, without quotes: runs of plain
    /// bytes are found eight at a time and copied whole, and the whole string goes through one raw
    /// write (see `RawWriter`). Shared by every JSON writer in the package.
    package mutating func writeJSONEscaped(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        // Worst case: every byte becomes `\u00XX`.
        self.writeRaw(maximumLength: bytes.count * 6) { writer in
            var runStart = 0
            var index = JSONSpecialBytes.first(in: bytes, from: 0)
            while index < bytes.count {
                writer.append(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                switch bytes[index] {
                case UInt8(ascii: "\""): writer.append("\\\"")
                case UInt8(ascii: "\\"): writer.append("\\\\")
                case 0x0A: writer.append("\\n")
                case 0x0D: writer.append("\\r")
                case 0x09: writer.append("\\t")
                case 0x08: writer.append("\\b")
                case 0x0C: writer.append("\\f")
                case let byte:
                    writer.append("\\u00")
                    writer.appendHexByte(byte)
                }
                runStart = index + 1
                index = JSONSpecialBytes.first(in: bytes, from: runStart)
            }
            writer.append(UnsafeRawBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        }
    }

    /// Writes a non-negative or negative integer in decimal, without allocating.
    package mutating func writeDecimal(_ value: Int) {
        if value < 0 {
            self.writeInteger(UInt8(ascii: "-"))
            // Int.min has no positive counterpart; write it through UInt.
            self.writeDecimal(magnitude: value.magnitude)
        } else {
            self.writeDecimal(magnitude: UInt(value))
        }
    }

    private mutating func writeDecimal(magnitude: UInt) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        var count = 0
        var rest = magnitude
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[23 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            self.writeBytes(UnsafeRawBufferPointer(rebasing: buffer[(24 - count)...]))
        }
    }
}
