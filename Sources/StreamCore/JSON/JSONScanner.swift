/// A forward-only scanner over borrowed JSON bytes, for the few fields the hot path needs.
///
/// It finds values without building anything: strings come back as the byte range of their escaped
/// contents, ready to be spliced into output JSON as they are (DESIGN.md: JSON in, JSON out). Strings
/// are validated while they are scanned (escapes well formed, no raw control characters), so a spliced
/// range can never end the string it is written into or make the output invalid. Members may come in
/// any order, with any whitespace; unknown members (Bedrock's `p` padding among them) are skipped.
package struct JSONScanner {
    package struct Failure: Error, Hashable, Sendable {
        /// Byte offset in the scanned bytes where scanning failed.
        package var offset: Int
    }

    /// How deep `skipValue` follows nested objects and arrays before giving up: hostile nesting costs
    /// bounded time and no stack.
    package static let maximumSkipDepth = 64

    package let bytes: UnsafeRawBufferPointer
    package private(set) var index: Int

    package init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.index = 0
    }

    package var isAtEnd: Bool {
        var copy = self
        copy.skipWhitespace()
        return copy.index >= copy.bytes.count
    }

    @inline(__always)
    private func failure() -> Failure { Failure(offset: self.index) }

    @inline(__always)
    package mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): self.index += 1
            default: return
            }
        }
    }

    /// Consumes `byte` after optional whitespace.
    @inline(__always)
    package mutating func consume(_ byte: UInt8) throws(Failure) {
        self.skipWhitespace()
        guard self.index < self.bytes.count, self.bytes[self.index] == byte else { throw self.failure() }
        self.index += 1
    }

    /// The next non-whitespace byte, not consumed; `nil` at the end.
    package mutating func peek() -> UInt8? {
        self.skipWhitespace()
        return self.index < self.bytes.count ? self.bytes[self.index] : nil
    }

    /// Reads a string and returns the range of its contents between the quotes, escapes left as they are.
    package mutating func readString() throws(Failure) -> Range<Int> {
        try self.consume(UInt8(ascii: "\""))
        let start = self.index
        // One C pass finds the closing quote and checks every escape and that no raw control
        // character (which JSON forbids in strings) comes before it.
        switch JSONSpecialBytes.stringEnd(in: self.bytes, from: start) {
        case .success(let end):
            self.index = end + 1
            return start..<end
        case .failure(let failure):
            self.index = failure.offset
            throw failure
        }
    }

    /// Reads an integer (optionally negative, no fraction or exponent) that fits in an `Int`.
    package mutating func readInteger() throws(Failure) -> Int {
        // One digit then a delimiter: every `contentBlockIndex` of a typical answer.
        if self.index &+ 1 < self.bytes.count {
            let digit = self.bytes[self.index] &- UInt8(ascii: "0")
            let after = self.bytes[self.index &+ 1]
            if digit < 10, after == UInt8(ascii: ",") || after == UInt8(ascii: "}") {
                self.index &+= 1
                return Int(digit)
            }
        }
        self.skipWhitespace()
        var negative = false
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "-") {
            negative = true
            self.index += 1
        }
        let start = self.index
        var value = 0
        while self.index < self.bytes.count, case let byte = self.bytes[self.index], byte &- UInt8(ascii: "0") < 10 {
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(byte &- UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw self.failure() }
            value = sum
            self.index += 1
        }
        guard self.index > start else { throw self.failure() }
        // A fraction or exponent means this was not an integer.
        if self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): throw self.failure()
            default: break
            }
        }
        return negative ? -value : value
    }

    /// Skips any one value: string, number, literal, object or array (up to ``maximumSkipDepth`` deep).
    package mutating func skipValue() throws(Failure) {
        try self.skipValue(depth: 0)
    }

    private mutating func skipValue(depth: Int) throws(Failure) {
        guard depth < Self.maximumSkipDepth, let byte = self.peek() else { throw self.failure() }
        switch byte {
        case UInt8(ascii: "\""):
            _ = try self.readString()
        case UInt8(ascii: "{"):
            self.index += 1
            if self.peek() == UInt8(ascii: "}") {
                self.index += 1
                return
            }
            repeat {
                _ = try self.readString()
                try self.consume(UInt8(ascii: ":"))
                try self.skipValue(depth: depth + 1)
            } while try self.consumeCommaOrClose(UInt8(ascii: "}"))
        case UInt8(ascii: "["):
            self.index += 1
            if self.peek() == UInt8(ascii: "]") {
                self.index += 1
                return
            }
            repeat {
                try self.skipValue(depth: depth + 1)
            } while try self.consumeCommaOrClose(UInt8(ascii: "]"))
        case UInt8(ascii: "t"): try self.consumeLiteral("true")
        case UInt8(ascii: "f"): try self.consumeLiteral("false")
        case UInt8(ascii: "n"): try self.consumeLiteral("null")
        default:
            let start = self.index
            while self.index < self.bytes.count {
                switch self.bytes[self.index] {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
                    UInt8(ascii: "e"), UInt8(ascii: "E"):
                    self.index += 1
                    continue
                default: break
                }
                break
            }
            guard self.index > start else { throw self.failure() }
        }
    }

    /// After a member or element: `true` at a comma (more follow), `false` at `close`.
    private mutating func consumeCommaOrClose(_ close: UInt8) throws(Failure) -> Bool {
        guard let byte = self.peek() else { throw self.failure() }
        self.index += 1
        if byte == UInt8(ascii: ",") { return true }
        if byte == close { return false }
        self.index -= 1
        throw self.failure()
    }

    private mutating func consumeLiteral(_ literal: StaticString) throws(Failure) {
        let count = literal.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw self.failure() }
        for offset in 0..<count where self.bytes[self.index + offset] != literal.utf8Start[offset] {
            throw self.failure()
        }
        self.index += count
    }

    /// Consumes `literal` if the bytes at the current position are exactly it (no whitespace skipped).
    /// For speculative fast paths over the exact shape a producer always writes; on `false` nothing
    /// was consumed.
    @inline(__always)
    package mutating func match(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard self.index &+ count <= self.bytes.count, let base = self.bytes.baseAddress else { return false }
        let here = base + self.index
        let expected = UnsafeRawPointer(literal.utf8Start)
        // Eight bytes at a time, the last word overlapping the one before it: the fast paths match
        // 5–25-byte literals, and a byte loop was a sixth of a delta frame's translation.
        if count >= 8 {
            var offset = 0
            while offset &+ 8 < count {
                guard here.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                    == expected.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                else { return false }
                offset &+= 8
            }
            guard here.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
                == expected.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            else { return false }
        } else {
            guard UnsafeRawBufferPointer(start: here, count: count).elementsEqual(literal) else { return false }
        }
        self.index &+= count
        return true
    }

    /// The last member of Bedrock's stream events, `,"p":"…"}`, without reading its string: when the
    /// next bytes are `,"p":"` and the input's last two are `"}`, moves to the end and returns true.
    ///
    /// `p` is padding (characters of random length that hide the length of what an event carries);
    /// nothing reads or relays it, so whether its text is well-formed changes nothing a client gets,
    /// and scanning it was a sixth of translating a delta frame. The route that relays Anthropic
    /// `chunk` events skips the `p` of their payload the same way.
    package mutating func skipPaddingMemberToEnd() -> Bool {
        guard self.match(",\"p\":\""), self.bytes.count &- 2 >= self.index,
            self.bytes[self.bytes.count &- 2] == UInt8(ascii: "\""), self.bytes[self.bytes.count &- 1] == UInt8(ascii: "}")
        else { return false }
        self.index = self.bytes.count
        return true
    }

    /// Goes back to the first byte, to rescan after a fast path gave up.
    package mutating func rewind() {
        self.index = 0
    }

    /// Walks the members of an object. `body` gets the key's raw range and must consume the value
    /// (read it or call ``skipValue()``).
    package mutating func forEachMember(
        _ body: (inout JSONScanner, Range<Int>) throws(Failure) -> Void
    ) throws(Failure) {
        try self.consume(UInt8(ascii: "{"))
        if self.peek() == UInt8(ascii: "}") {
            self.index += 1
            return
        }
        repeat {
            let key = try self.readString()
            try self.consume(UInt8(ascii: ":"))
            try body(&self, key)
        } while try self.consumeCommaOrClose(UInt8(ascii: "}"))
    }

    /// In a ConverseStream `contentBlockDelta` payload, the length of the generated content in its
    /// `delta` (text, reasoning text, tool input), summed over its string values but signatures.
    package mutating func generatedBytes() throws(Failure) -> Int {
        var total = 0
        try self.forEachMember { scanner, key throws(Failure) in
            if scanner.bytes(in: key, equal: "delta") {
                total += try scanner.stringBytes(depth: 0)
            } else {
                try scanner.skipValue()
            }
        }
        return total
    }

    private mutating func stringBytes(depth: Int) throws(Failure) -> Int {
        guard depth < Self.maximumSkipDepth else { throw self.failure() }
        switch self.peek() {
        case UInt8(ascii: "\""):
            return try self.readString().count
        case UInt8(ascii: "{"):
            var total = 0
            try self.forEachMember { scanner, key throws(Failure) in
                if scanner.bytes(in: key, equal: "signature") {
                    try scanner.skipValue()
                } else {
                    total += try scanner.stringBytes(depth: depth + 1)
                }
            }
            return total
        default:
            try self.skipValue()
            return 0
        }
    }

    /// Whether the raw bytes in `range` are exactly `name` (keys we look for have no escapes).
    @inline(__always)
    package func bytes(in range: Range<Int>, equal name: StaticString) -> Bool {
        guard range.count == name.utf8CodeUnitCount else { return false }
        let expected = name.utf8Start
        var offset = 0
        for index in range {
            if self.bytes[index] != expected[offset] { return false }
            offset += 1
        }
        return true
    }
}

extension UInt8 {
    var isHexDigit: Bool {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"):
            true
        default:
            false
        }
    }
}
