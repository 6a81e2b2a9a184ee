internal import NIOCore

/// Where the members of one JSON object (or the elements of one array) sit in a document's bytes,
/// so a rewrite can splice every untouched member exactly as the client wrote it.
///
/// The Anthropic → Bedrock body change is a handful of members removed or replaced; re-serializing
/// the rest would reorder keys, respell numbers and break prompt-cache byte identity. Ranges are
/// offsets into the bytes the layout was read from.
struct JSONMemberLayout {
    struct Member {
        /// The key's contents between the quotes, escapes as written.
        var key: Range<Int>
        /// From the key's opening quote to the end of the value: what a splice copies.
        var whole: Range<Int>
        var value: Range<Int>
    }

    var members: [Member] = []

    /// Reads the object occupying `range` of `bytes`.
    ///
    /// - Throws: `JSONScanner.Failure` when the range does not hold an object (or nests deeper than
    ///   `JSONScanner.maximumSkipDepth` below a member).
    init(objectIn bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(JSONScanner.Failure) {
        let base = range.lowerBound
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[range]))
        var members: [Member] = []
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            _ = scanner.peek()  // skips whitespace, so the value starts at `index`
            let start = scanner.index
            try scanner.skipValue()
            members.append(
                Member(
                    key: (key.lowerBound + base)..<(key.upperBound + base),
                    whole: (key.lowerBound - 1 + base)..<(scanner.index + base),
                    value: (start + base)..<(scanner.index + base)
                )
            )
        }
        self.members = members
    }

    /// The byte ranges of the elements of the array occupying `range` of `bytes`.
    static func elements(ofArrayIn bytes: UnsafeRawBufferPointer, range: Range<Int>) throws(JSONScanner.Failure) -> [Range<Int>] {
        let base = range.lowerBound
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[range]))
        try scanner.consume(UInt8(ascii: "["))
        var elements: [Range<Int>] = []
        if scanner.peek() == UInt8(ascii: "]") { return elements }
        while true {
            _ = scanner.peek()
            let start = scanner.index
            try scanner.skipValue()
            elements.append((start + base)..<(scanner.index + base))
            if scanner.peek() == UInt8(ascii: ",") {
                try scanner.consume(UInt8(ascii: ","))
            } else {
                try scanner.consume(UInt8(ascii: "]"))
                return elements
            }
        }
    }

    /// The member named `name` (compared as raw key bytes; the keys looked up have no escapes).
    func member(_ name: StaticString, in bytes: UnsafeRawBufferPointer) -> Member? {
        self.members.last { Self.key($0.key, in: bytes, equals: name) }
    }

    static func key(_ key: Range<Int>, in bytes: UnsafeRawBufferPointer, equals name: StaticString) -> Bool {
        guard key.count == name.utf8CodeUnitCount else { return false }
        return UnsafeRawBufferPointer(rebasing: bytes[key]).elementsEqual(UnsafeRawBufferPointer(start: name.utf8Start, count: key.count))
    }
}

extension ByteBuffer {
    /// Appends `bytes[range]`.
    mutating func writeBytes(_ bytes: UnsafeRawBufferPointer, range: Range<Int>) {
        self.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }
}
