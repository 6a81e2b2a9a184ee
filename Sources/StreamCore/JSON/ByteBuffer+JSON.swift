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
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): self.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): self.writeStaticString("\\\\")
            case UInt8(ascii: "\n"): self.writeStaticString("\\n")
            case UInt8(ascii: "\r"): self.writeStaticString("\\r")
            case UInt8(ascii: "\t"): self.writeStaticString("\\t")
            case 0..<0x20:
                self.writeStaticString("\\u00")
                self.writeInteger(Self.hexDigits[Int(byte >> 4)])
                self.writeInteger(Self.hexDigits[Int(byte & 0xF)])
            default: self.writeInteger(byte)
            }
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

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}
