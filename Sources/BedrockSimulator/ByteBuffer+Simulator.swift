internal import NIOCore

extension ByteBuffer {
    private static let paddingAlphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)

    /// Writes Bedrock's `"p"` padding value, quoted: a prefix of `abc…xyzABC…XYZ0123…9`, 1–62
    /// characters, its length varying by frame like Bedrock's (EVENTSTREAM.md §6).
    mutating func writePadding(seed: UInt64, frame: Int) {
        var mixed = seed &+ UInt64(truncatingIfNeeded: frame) &* 0x9E37_79B9_7F4A_7C15
        mixed ^= mixed >> 29
        let length = 1 + Int(mixed % UInt64(Self.paddingAlphabet.count))
        self.writeInteger(UInt8(ascii: "\""))
        self.writeBytes(Self.paddingAlphabet[0..<length])
        self.writeInteger(UInt8(ascii: "\""))
    }

    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Writes `bytes` as standard padded base64 (RFC 4648 §4), the encoding of `{"bytes":…}` chunks.
    mutating func writeBase64(of bytes: ByteBuffer) {
        bytes.withUnsafeReadableBytes { input in
            let alphabet = Self.base64Alphabet
            var index = 0
            while index + 3 <= input.count {
                let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                self.writeInteger(alphabet[Int(value >> 18 & 63)])
                self.writeInteger(alphabet[Int(value >> 12 & 63)])
                self.writeInteger(alphabet[Int(value >> 6 & 63)])
                self.writeInteger(alphabet[Int(value & 63)])
                index += 3
            }
            switch input.count - index {
            case 1:
                let value = UInt32(input[index]) << 16
                self.writeInteger(alphabet[Int(value >> 18 & 63)])
                self.writeInteger(alphabet[Int(value >> 12 & 63)])
                self.writeStaticString("==")
            case 2:
                let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8
                self.writeInteger(alphabet[Int(value >> 18 & 63)])
                self.writeInteger(alphabet[Int(value >> 12 & 63)])
                self.writeInteger(alphabet[Int(value >> 6 & 63)])
                self.writeStaticString("=")
            default:
                break
            }
        }
    }
}
