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
        self.buffer.writeInteger(UInt8(ascii: "\""))
        self.buffer.writeJSONEscaped(bytes)
        self.buffer.writeInteger(UInt8(ascii: "\""))
    }
}
