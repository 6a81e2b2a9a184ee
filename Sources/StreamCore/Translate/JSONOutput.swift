import NIOCore

/// Writes compact JSON into a `ByteBuffer` for the once-per-request translations.
///
/// A struct owning its buffer (rather than `ByteBuffer` extensions) keeps these helpers from
/// colliding with the hot-path writer in `StreamCore/JSON/`.
struct JSONOutput {
    var buffer: ByteBuffer

    init(buffer: ByteBuffer) {
        self.buffer = buffer
    }

    /// Constant JSON punctuation and keys, written as-is.
    mutating func raw(_ text: StaticString) {
        buffer.writeStaticString(text)
    }

    /// `"key":` for a key that needs no escaping.
    mutating func key(_ name: StaticString) {
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(name)
        buffer.writeStaticString("\":")
    }

    mutating func string(_ value: String) {
        var value = value
        // `withUTF8` borrows native storage, so escaping reads the bytes in place.
        value.withUTF8 { utf8 in
            writeEscaped(UnsafeRawBufferPointer(utf8))
        }
    }

    mutating func string(_ value: StaticString) {
        value.withUTF8Buffer { utf8 in
            writeEscaped(UnsafeRawBufferPointer(utf8))
        }
    }

    /// Writes the readable bytes of `json` (valid UTF-8) as one JSON string, e.g. serialized tool
    /// input becoming OpenAI's `arguments` string.
    mutating func string(containing json: ByteBuffer) {
        json.withUnsafeReadableBytes { bytes in
            writeEscaped(bytes)
        }
    }

    mutating func int(_ value: Int) {
        // Integers format without Foundation; `description` of an Int is a small string, no heap.
        buffer.writeString(value.description)
    }

    mutating func double(_ value: Double) {
        // Swift prints the shortest representation that round-trips (0.7, not 0.69999…).
        if value.isFinite, value.rounded() == value, abs(value) < 1e15 {
            buffer.writeString(Int(value).description)
        } else if value.isFinite {
            buffer.writeString(value.description)
        } else {
            buffer.writeStaticString("null")
        }
    }

    mutating func bool(_ value: Bool) {
        buffer.writeStaticString(value ? "true" : "false")
    }

    mutating func value(_ value: ParsedJSON) {
        switch value {
        case .null:
            raw("null")
        case .bool(let flag):
            bool(flag)
        case .number(let literal):
            buffer.writeString(literal)
        case .string(let text):
            string(text)
        case .array(let elements):
            buffer.writeInteger(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { buffer.writeInteger(UInt8(ascii: ",")) }
                first = false
                self.value(element)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let object):
            buffer.writeInteger(UInt8(ascii: "{"))
            var first = true
            for member in object.members {
                if !first { buffer.writeInteger(UInt8(ascii: ",")) }
                first = false
                string(member.key)
                buffer.writeInteger(UInt8(ascii: ":"))
                self.value(member.value)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        }
    }

    /// Writes `bytes` (valid UTF-8) as a JSON string, copying unescaped runs in one call each.
    private mutating func writeEscaped(_ bytes: UnsafeRawBufferPointer) {
        // One reservation for the worst case (every byte a `\u00XX`), then runs of plain bytes and
        // escapes are copied through a raw writer: one buffer access per string instead of one per
        // escape, which mattered for tool results full of quotes and newlines.
        self.buffer.writeRaw(maximumLength: bytes.count * 6 + 2) { writer in
            writer.append("\"")
            var runStart = 0
            var index = JSONSpecialBytes.first(in: bytes, from: 0)
            while index < bytes.count {
                writer.append(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""): writer.append("\\\"")
                case UInt8(ascii: "\\"): writer.append("\\\\")
                case 0x0A: writer.append("\\n")
                case 0x0D: writer.append("\\r")
                case 0x09: writer.append("\\t")
                case 0x08: writer.append("\\b")
                case 0x0C: writer.append("\\f")
                default:
                    writer.append("\\u00")
                    writer.appendHexByte(byte)
                }
                runStart = index + 1
                index = JSONSpecialBytes.first(in: bytes, from: runStart)
            }
            writer.append(UnsafeRawBufferPointer(rebasing: bytes[runStart..<bytes.count]))
            writer.append("\"")
        }
    }
}
