internal import NIOCore
internal import StreamCore

/// An order-preserving JSON value, for reading request bodies and scenario `tool_input`.
///
/// StreamCore's own parser is internal to it, and the simulator reads a request once, so a small
/// recursive parser here is enough (no Foundation, per STYLE.md §1). Numbers stay the literal text
/// so a `tool_input` such as `{"n":1}` is written back as `1`, not `1.0`.
enum SimulatorJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([SimulatorJSON])
    case object([Member])

    struct Member: Sendable, Equatable {
        var key: String
        var value: SimulatorJSON
    }

    struct ParseError: Error, Sendable {
        var offset: Int
    }

    /// Deep enough for any real request; bounds recursion on hostile input.
    static let maximumNestingDepth = 128

    subscript(key: String) -> SimulatorJSON? {
        guard case .object(let members) = self else { return nil }
        // Later duplicates win, as in JavaScript's JSON.parse.
        return members.last(where: { $0.key == key })?.value
    }

    var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var arrayValue: [SimulatorJSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    var isObject: Bool {
        if case .object = self { return true }
        return false
    }

    static func parse(_ buffer: ByteBuffer) throws(ParseError) -> SimulatorJSON {
        let result: Result<SimulatorJSON, ParseError> = buffer.withUnsafeReadableBytes { bytes in
            var parser = Parser(bytes: bytes)
            do throws(ParseError) {
                parser.skipWhitespace()
                let value = try parser.parseValue(depth: 0)
                parser.skipWhitespace()
                guard parser.index == bytes.count else { throw ParseError(offset: parser.index) }
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    static func parse(_ text: String) throws(ParseError) -> SimulatorJSON {
        try self.parse(ByteBuffer(string: text))
    }

    /// Compact JSON text, members in their original order.
    func write(into buffer: inout ByteBuffer) {
        switch self {
        case .null: buffer.writeStaticString("null")
        case .bool(let value): buffer.writeStaticString(value ? "true" : "false")
        case .number(let literal): buffer.writeString(literal)
        case .string(let value): buffer.writeJSONString(value)
        case .array(let elements):
            buffer.writeStaticString("[")
            for (index, element) in elements.enumerated() {
                if index > 0 { buffer.writeStaticString(",") }
                element.write(into: &buffer)
            }
            buffer.writeStaticString("]")
        case .object(let members):
            buffer.writeStaticString("{")
            for (index, member) in members.enumerated() {
                if index > 0 { buffer.writeStaticString(",") }
                buffer.writeJSONString(member.key)
                buffer.writeStaticString(":")
                member.value.write(into: &buffer)
            }
            buffer.writeStaticString("}")
        }
    }

    var compactText: String {
        var buffer = ByteBuffer()
        self.write(into: &buffer)
        return String(buffer: buffer)
    }
}

private struct Parser {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): self.index += 1
            default: return
            }
        }
    }

    private func fail() -> SimulatorJSON.ParseError {
        SimulatorJSON.ParseError(offset: self.index)
    }

    private mutating func expect(_ literal: StaticString) throws(SimulatorJSON.ParseError) {
        let count = literal.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw self.fail() }
        let start = literal.utf8Start
        for offset in 0..<count where self.bytes[self.index + offset] != start[offset] {
            throw self.fail()
        }
        self.index += count
    }

    mutating func parseValue(depth: Int) throws(SimulatorJSON.ParseError) -> SimulatorJSON {
        guard depth < SimulatorJSON.maximumNestingDepth, self.index < self.bytes.count else { throw self.fail() }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"):
            self.index += 1
            var members: [SimulatorJSON.Member] = []
            self.skipWhitespace()
            if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "}") {
                self.index += 1
                return .object(members)
            }
            while true {
                self.skipWhitespace()
                let key = try self.parseString()
                self.skipWhitespace()
                try self.expect(":")
                self.skipWhitespace()
                let value = try self.parseValue(depth: depth + 1)
                members.append(.init(key: key, value: value))
                self.skipWhitespace()
                guard self.index < self.bytes.count else { throw self.fail() }
                let byte = self.bytes[self.index]
                self.index += 1
                if byte == UInt8(ascii: "}") { return .object(members) }
                guard byte == UInt8(ascii: ",") else { throw self.fail() }
            }
        case UInt8(ascii: "["):
            self.index += 1
            var elements: [SimulatorJSON] = []
            self.skipWhitespace()
            if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "]") {
                self.index += 1
                return .array(elements)
            }
            while true {
                self.skipWhitespace()
                elements.append(try self.parseValue(depth: depth + 1))
                self.skipWhitespace()
                guard self.index < self.bytes.count else { throw self.fail() }
                let byte = self.bytes[self.index]
                self.index += 1
                if byte == UInt8(ascii: "]") { return .array(elements) }
                guard byte == UInt8(ascii: ",") else { throw self.fail() }
            }
        case UInt8(ascii: "\""):
            return .string(try self.parseString())
        case UInt8(ascii: "t"):
            try self.expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try self.expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try self.expect("null")
            return .null
        default:
            return .number(try self.parseNumber())
        }
    }

    private mutating func parseNumber() throws(SimulatorJSON.ParseError) -> String {
        let start = self.index
        func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "-") { self.index += 1 }
        let integerStart = self.index
        while self.index < self.bytes.count, isDigit(self.bytes[self.index]) { self.index += 1 }
        guard self.index > integerStart else { throw self.fail() }
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ".") {
            self.index += 1
            let fractionStart = self.index
            while self.index < self.bytes.count, isDigit(self.bytes[self.index]) { self.index += 1 }
            guard self.index > fractionStart else { throw self.fail() }
        }
        if self.index < self.bytes.count, self.bytes[self.index] | 0x20 == UInt8(ascii: "e") {
            self.index += 1
            if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "+") || self.bytes[self.index] == UInt8(ascii: "-") {
                self.index += 1
            }
            let exponentStart = self.index
            while self.index < self.bytes.count, isDigit(self.bytes[self.index]) { self.index += 1 }
            guard self.index > exponentStart else { throw self.fail() }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self)
    }

    private mutating func parseString() throws(SimulatorJSON.ParseError) -> String {
        guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else { throw self.fail() }
        self.index += 1
        var utf8: [UInt8] = []
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            self.index += 1
            switch byte {
            case UInt8(ascii: "\""):
                // Invalid UTF-8 is repaired rather than refused: the simulator only reads text back.
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard self.index < self.bytes.count else { throw self.fail() }
                let escape = self.bytes[self.index]
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""): utf8.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): utf8.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "/"): utf8.append(UInt8(ascii: "/"))
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "r"): utf8.append(UInt8(ascii: "\r"))
                case UInt8(ascii: "t"): utf8.append(UInt8(ascii: "\t"))
                case UInt8(ascii: "u"):
                    var scalar = try self.parseHex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low surrogate.
                        try self.expect("\\u")
                        let low = try self.parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw self.fail() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw self.fail() }
                    utf8.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    throw self.fail()
                }
            case 0..<0x20:
                throw self.fail()
            default:
                utf8.append(byte)
            }
        }
        throw self.fail()
    }

    private mutating func parseHex4() throws(SimulatorJSON.ParseError) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.fail() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw self.fail()
            }
            value = value << 4 | UInt32(digit)
            self.index += 1
        }
        return value
    }
}
