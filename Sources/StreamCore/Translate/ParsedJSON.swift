package import NIOCore
// A JSON value for the once-per-request translations (OpenAI request → Converse request, Converse
// response → chat.completion). The per-chunk path never builds one of these (DESIGN.md: hot path).
//
// Why not Codable into `[String: Any]`-like enums: an untyped Codable enum probes every type with a
// thrown error per value, loses object key order and turns number literals into Doubles. Tool
// schemas and tool-call arguments are forwarded, so key order (prompt-cache stability: the same
// request must give the same bytes) and number literals (no `1` → `1.0`) are preserved here.

/// An order-preserving JSON value.
package enum ParsedJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number exactly as written (already checked against the JSON number grammar).
    case number(String)
    case string(String)
    case array([ParsedJSON])
    case object(JSONObject)

    package var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    package var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    package var arrayValue: [ParsedJSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    package var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    package var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    package var doubleValue: Double? {
        if case .number(let literal) = self { return Double(literal) }
        return nil
    }

    /// The value as an integer; `2.0` and `2e3` count, `2.5` does not.
    package var intValue: Int? {
        guard case .number(let literal) = self else { return nil }
        if let value = Int(literal) { return value }
        guard let double = Double(literal), double.rounded() == double,
            double >= -9.0e15, double <= 9.0e15
        else { return nil }
        return Int(double)
    }
}

extension ParsedJSON {
    /// An object's member by key (the last of duplicates, `null` included); nil for other values.
    package subscript(key: String) -> ParsedJSON? {
        self.objectValue?[key]
    }

    package var isObject: Bool { self.objectValue != nil }

    /// Compact JSON text, members in their original order, numbers as they were written.
    package func write(into buffer: inout ByteBuffer) {
        var output = JSONOutput(buffer: buffer)
        buffer = ByteBuffer()  // `output` holds the only reference while writing: no copy on write
        output.value(self)
        buffer = output.buffer
    }

    package var compactText: String {
        var buffer = ByteBuffer()
        self.write(into: &buffer)
        return String(buffer: buffer)
    }
}

/// A JSON object with its members in document order.
package struct JSONObject: Sendable, Equatable {
    package var members: [(key: String, value: ParsedJSON)]

    package init(members: [(key: String, value: ParsedJSON)] = []) {
        self.members = members
    }

    /// The last member with this key (later duplicates win, as in JavaScript's `JSON.parse`).
    package subscript(key: String) -> ParsedJSON? {
        var index = members.endIndex
        while index > members.startIndex {
            index -= 1
            if members[index].key == key { return members[index].value }
        }
        return nil
    }

    /// The member, treating an explicit `null` like an absent key (OpenAI clients send both).
    package func present(_ key: String) -> ParsedJSON? {
        guard let value = self[key], !value.isNull else { return nil }
        return value
    }

    package static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.elementsEqual(rhs.members) { $0.key == $1.key && $0.value == $1.value }
    }
}

/// Why a document is not JSON; `offset` is the byte offset where parsing stopped.
package struct JSONParseError: Error, Sendable {
    package var offset: Int
    package var reason: String
}

/// A strict RFC 8259 parser over borrowed bytes: UTF-8 validated, control characters in strings
/// rejected, nesting depth bounded (DESIGN.md: bounded JSON nesting depth).
package struct JSONParser: ~Copyable {
    private let bytes: UnsafeRawBufferPointer
    private var index: Int
    private var depth = 0
    private let maximumNestingDepth: Int

    private init(bytes: UnsafeRawBufferPointer, maximumNestingDepth: Int) {
        self.bytes = bytes
        self.index = 0
        self.maximumNestingDepth = maximumNestingDepth
    }

    /// Parses one complete document; trailing non-whitespace is an error.
    package static func parse(
        _ bytes: UnsafeRawBufferPointer,
        maximumNestingDepth: Int
    ) throws(JSONParseError) -> ParsedJSON {
        var parser = JSONParser(bytes: bytes, maximumNestingDepth: maximumNestingDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.index == bytes.count else {
            throw JSONParseError(offset: parser.index, reason: "unexpected data after the JSON value")
        }
        return value
    }

    package static func parse(_ text: String, maximumNestingDepth: Int) throws(JSONParseError) -> ParsedJSON {
        var text = text
        // `withUTF8` borrows native storage (it only copies for bridged or non-contiguous strings).
        let result: Result<ParsedJSON, JSONParseError> = text.withUTF8 { utf8 in
            Result { () throws(JSONParseError) -> ParsedJSON in
                try parse(UnsafeRawBufferPointer(utf8), maximumNestingDepth: maximumNestingDepth)
            }
        }
        return try result.get()
    }

    private func fail(_ reason: String) -> JSONParseError {
        JSONParseError(offset: index, reason: reason)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                index += 1
            default:
                return
            }
        }
    }

    private mutating func parseValue() throws(JSONParseError) -> ParsedJSON {
        guard index < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            return try parseObject()
        case UInt8(ascii: "["):
            return try parseArray()
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw fail("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw fail("unexpected end of input") }
        for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
            throw fail("invalid literal")
        }
        index += count
    }

    private mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        guard depth <= maximumNestingDepth else { throw fail("nesting deeper than \(maximumNestingDepth)") }
        index += 1
        skipWhitespace()
    }

    private mutating func parseObject() throws(JSONParseError) -> ParsedJSON {
        try enterContainer()
        var members: [(key: String, value: ParsedJSON)] = []
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(JSONObject(members: members))
        }
        while true {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a key") }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            members.append((key, value))
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                skipWhitespace()
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                depth -= 1
                return .object(JSONObject(members: members))
            } else {
                throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray() throws(JSONParseError) -> ParsedJSON {
        try enterContainer()
        var elements: [ParsedJSON] = []
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue())
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                skipWhitespace()
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                depth -= 1
                return .array(elements)
            } else {
                throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func parseNumber() throws(JSONParseError) -> String {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { throw fail("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if isDigit(bytes[index]) {
            skipDigits()
        } else {
            throw fail("invalid number")
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw fail("invalid number") }
            skipDigits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { throw fail("invalid number") }
            skipDigits()
        }
        // Safe: the grammar above admits ASCII only.
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func skipDigits() {
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: most strings have no escapes, so they become a String straight from the input.
        index = JSONSpecialBytes.first(in: bytes, from: index)
        guard index < bytes.count else { throw fail("unterminated string") }
        if bytes[index] == UInt8(ascii: "\"") {
            let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
            index += 1
            guard let string = Self.string(validatingUTF8: raw) else {
                throw JSONParseError(offset: start, reason: "invalid UTF-8 in string")
            }
            return string
        }
        // Escapes. First find the closing quote, checking every escape on the way, so that the
        // unescaped text (never longer than its escaped form) is written once into one buffer of
        // the right size by a pass that cannot fail. (Appending runs and escapes to a growing
        // `[UInt8]` was a third of the mapping's time on source code, dense with `\n` and `\"`.)
        let firstEscape = index
        while true {
            guard index < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { break }
            if byte < 0x20 { throw fail("unescaped control character in string") }
            index += 1  // the backslash
            try checkEscape()
            index = JSONSpecialBytes.first(in: bytes, from: index)
        }
        let end = index
        index += 1  // the closing quote
        let string = withUnsafeTemporaryAllocation(byteCount: end - start, alignment: 1) { buffer -> String? in
            // Safe to force unwrap: the string holds at least one escape, so `end - start >= 2`.
            let written = Self.unescape(UnsafeRawBufferPointer(rebasing: bytes[..<end]), from: start, firstEscape: firstEscape, into: buffer.baseAddress!)
            return Self.string(validatingUTF8: UnsafeRawBufferPointer(start: buffer.baseAddress, count: written))
        }
        guard let string else { throw JSONParseError(offset: start, reason: "invalid UTF-8 in string") }
        return string
    }

    /// The bytes as a `String`, or `nil` when they are not valid UTF-8.
    ///
    /// Not `String(validating:as:)`: it is generic and unspecialised in the standard library, and
    /// looked up two generic metadata records on every call (about 650 instructions, 1.1 million per
    /// 200 KB request). `String(decoding:as:)` takes the standard library's direct path and repairs
    /// instead of failing; a repair always changes the bytes (it replaces an invalid sequence of one
    /// to three bytes with U+FFFD's three, and an invalid sequence is never U+FFFD itself), so the
    /// result is valid exactly when its UTF-8 equals the input.
    static func string(validatingUTF8 bytes: UnsafeRawBufferPointer) -> String? {
        var string = String(decoding: bytes.assumingMemoryBound(to: UInt8.self), as: UTF8.self)
        let same = string.withUTF8 { UnsafeRawBufferPointer($0).hasSameBytes(as: bytes) }
        return same ? string : nil
    }

    /// Checks the escape after a backslash (at `index`) and moves past it. Inlined: it runs for every
    /// escape of every string, and a call per escape profiled at 5% of the mapping.
    @inline(__always)
    private mutating func checkEscape() throws(JSONParseError) {
        guard index < bytes.count else { throw fail("unterminated escape") }
        let byte = bytes[index]
        index += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
            UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            return
        case UInt8(ascii: "u"):
            try checkHexDigits()
        default:
            throw fail("invalid escape")
        }
    }

    /// Checks the four hex digits of a `\\u` escape (at `index`) and moves past them.
    private mutating func checkHexDigits() throws(JSONParseError) {
        guard bytes.count - index >= 4 else { throw fail("truncated \\u escape") }
        for _ in 0..<4 {
            guard bytes[index].isHexDigit else { throw fail("invalid \\u escape") }
            index += 1
        }
    }

    /// Writes the unescaped contents of the string `bytes[start...]` (everything up to, not
    /// including, its closing quote, with every escape already checked) to `output`; returns the
    /// number of bytes written, at most `bytes.count - start`.
    ///
    /// `\u` escapes become UTF-8; a surrogate pair becomes its one scalar, and a lone surrogate
    /// becomes U+FFFD: JavaScript clients that cut a string in the middle of a pair send one, and
    /// that should not cost the request a 400.
    private static func unescape(
        _ bytes: UnsafeRawBufferPointer, from start: Int, firstEscape: Int, into output: UnsafeMutableRawPointer
    ) -> Int {
        var written = 0
        var run = start
        var backslash = firstEscape
        while true {
            if backslash > run {
                // Safe to force unwrap: the run is not empty, so neither is `bytes`.
                output.advanced(by: written).copyMemory(from: bytes.baseAddress! + run, byteCount: backslash - run)
                written += backslash - run
            }
            guard backslash < bytes.count else { return written }
            var next = backslash + 2
            let letter = bytes[backslash + 1]
            if letter != UInt8(ascii: "u") {
                output.storeBytes(of: Self.unescaped(letter), toByteOffset: written, as: UInt8.self)
                written += 1
            } else {
                var scalar = Self.hex4(bytes, at: next)
                next += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    if bytes.count - next >= 6, bytes[next] == UInt8(ascii: "\\"), bytes[next + 1] == UInt8(ascii: "u"),
                        case let low = Self.hex4(bytes, at: next + 2), (0xDC00..<0xE000).contains(low)
                    {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        next += 6
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00..<0xE000).contains(scalar) {
                    scalar = 0xFFFD
                }
                // Surrogates were replaced above, so the fallback is unreachable; it avoids a force unwrap.
                UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}") { byte in
                    output.storeBytes(of: byte, toByteOffset: written, as: UInt8.self)
                    written += 1
                }
            }
            run = next
            backslash = JSONSpecialBytes.first(in: bytes, from: next)
        }
    }

    /// The byte a one-letter escape stands for (`"`, `\\` and `/` stand for themselves).
    @inline(__always)
    private static func unescaped(_ letter: UInt8) -> UInt8 {
        switch letter {
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "t"): 0x09
        default: letter
        }
    }

    /// Four hex digits at `offset`, already checked by `checkEscape`.
    private static func hex4(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for index in offset..<offset + 4 {
            let byte = bytes[index]
            // '0'...'9' are 0x30...0x39; 'a'...'f' and 'A'...'F' are the same with 0x20 set.
            let digit = byte <= UInt8(ascii: "9") ? byte &- UInt8(ascii: "0") : (byte | 0x20) &- UInt8(ascii: "a") &+ 10
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}
