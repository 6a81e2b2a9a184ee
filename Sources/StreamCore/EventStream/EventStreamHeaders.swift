public import NIOCore

/// The headers of one message, kept as the validated header section of the frame.
///
/// The decoder checks every record before a message is handed out (complete, known type, inside the
/// section, no duplicate names), so reading them here cannot fail. Nothing is parsed into an array:
/// lookups walk the few bytes of the section, which for Bedrock's three headers is cheaper than
/// building any collection, and allocates nothing.
public struct EventStreamHeaders: Sendable, Hashable {
    /// The raw header section (a slice of the frame).
    @usableFromInline
    package var section: ByteBuffer

    package init(validatedSection: ByteBuffer) {
        self.section = validatedSection
    }

    /// An empty header set.
    public init() {
        self.section = ByteBuffer()
    }

    /// The number of header records.
    public var count: Int {
        var count = 0
        self.section.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                offset = HeaderRecord(validatedIn: bytes, at: offset).end
                count += 1
            }
        }
        return count
    }

    /// The value of the header called `name`, or `nil` when the message has none.
    ///
    /// Compares bytes against the static name: no `String` is made.
    public func value(named name: StaticString) -> EventStreamHeaderValue? {
        guard let record = self.record(named: name) else { return nil }
        return self.value(of: record)
    }

    /// The bytes of the string header called `name`, or `nil` when it is absent or not a string.
    public func stringBytes(named name: StaticString) -> ByteBuffer? {
        guard let record = self.record(named: name), record.typeCode == 7 else { return nil }
        return self.section.getSlice(at: self.section.readerIndex + record.valueStart, length: record.valueLength)
    }

    /// Whether the string header called `name` holds exactly `expected` (byte comparison).
    public func string(named name: StaticString, equals expected: StaticString) -> Bool {
        guard let record = self.record(named: name), record.typeCode == 7 else { return false }
        return self.section.withUnsafeReadableBytes { bytes in
            let value = UnsafeRawBufferPointer(rebasing: bytes[record.valueStart..<record.valueStart + record.valueLength])
            return value.elementsEqual(expected)
        }
    }

    private func record(named name: StaticString) -> HeaderRecord? {
        self.section.withUnsafeReadableBytes { bytes -> HeaderRecord? in
            var offset = 0
            while offset < bytes.count {
                let record = HeaderRecord(validatedIn: bytes, at: offset)
                let recordName = UnsafeRawBufferPointer(
                    rebasing: bytes[record.nameStart..<record.nameStart + record.nameLength]
                )
                if recordName.elementsEqual(name) { return record }
                offset = record.end
            }
            return nil
        }
    }

    fileprivate func value(of record: HeaderRecord) -> EventStreamHeaderValue {
        let start = self.section.readerIndex + record.valueStart
        // Safe to force unwrap: the decoder validated that every value lies inside the section.
        switch record.typeCode {
        case 0: return .bool(true)
        case 1: return .bool(false)
        case 2: return .byte(self.section.getInteger(at: start, as: Int8.self)!)
        case 3: return .short(self.section.getInteger(at: start, as: Int16.self)!)
        case 4: return .integer(self.section.getInteger(at: start, as: Int32.self)!)
        case 5: return .long(self.section.getInteger(at: start, as: Int64.self)!)
        case 6: return .byteArray(self.section.getSlice(at: start, length: record.valueLength)!)
        case 7: return .string(self.section.getSlice(at: start, length: record.valueLength)!)
        case 8: return .timestamp(self.section.getInteger(at: start, as: Int64.self)!)
        default: return .uuid(self.section.getSlice(at: start, length: record.valueLength)!)
        }
    }
}

extension EventStreamHeaders: Sequence {
    public struct Iterator: IteratorProtocol {
        private let headers: EventStreamHeaders
        private var offset = 0

        fileprivate init(headers: EventStreamHeaders) {
            self.headers = headers
        }

        public mutating func next() -> EventStreamHeader? {
            let section = self.headers.section
            guard self.offset < section.readableBytes else { return nil }
            let record = section.withUnsafeReadableBytes { HeaderRecord(validatedIn: $0, at: self.offset) }
            self.offset = record.end
            // Safe to force unwrap: the name lies inside the validated section.
            let name = section.getSlice(at: section.readerIndex + record.nameStart, length: record.nameLength)!
            return EventStreamHeader(name: name, value: self.headers.value(of: record))
        }
    }

    public func makeIterator() -> Iterator {
        Iterator(headers: self)
    }
}

extension EventStreamHeaders: CustomStringConvertible {
    public var description: String {
        let fields = self.map { header in "\(String(buffer: header.name)): \(header.value)" }
        return "[" + fields.joined(separator: ", ") + "]"
    }
}

extension UnsafeRawBufferPointer {
    /// Byte equality with static text, without making a collection of either.
    @inline(__always)
    package func elementsEqual(_ name: StaticString) -> Bool {
        guard self.count == name.utf8CodeUnitCount else { return false }
        // Header names are short (Bedrock's are 11–15 bytes): a plain loop beats a libc call here.
        let expected = name.utf8Start
        for index in 0..<self.count where self[index] != expected[index] {
            return false
        }
        return true
    }
}

/// Where one header record's parts lie, relative to the start of the header section.
package struct HeaderRecord {
    package var nameStart: Int
    package var nameLength: Int
    package var typeCode: UInt8
    package var valueStart: Int
    package var valueLength: Int
    package var end: Int

    /// The largest string or byte-array value: the wire allows a u16, but the C and Java reference
    /// decoders and Go's encoder cap it at Int16.max (EVENTSTREAM.md §3).
    package static let maximumVariableValueLength = Int(Int16.max)

    /// Reads a record the decoder already validated.
    package init(validatedIn bytes: UnsafeRawBufferPointer, at offset: Int) {
        // Validation guarantees the record is complete, so the parse cannot fail here.
        self = HeaderRecord.parse(bytes, at: offset) ?? HeaderRecord(
            nameStart: offset, nameLength: 0, typeCode: 0, valueStart: offset, valueLength: 0, end: bytes.count
        )
    }

    private init(nameStart: Int, nameLength: Int, typeCode: UInt8, valueStart: Int, valueLength: Int, end: Int) {
        self.nameStart = nameStart
        self.nameLength = nameLength
        self.typeCode = typeCode
        self.valueStart = valueStart
        self.valueLength = valueLength
        self.end = end
    }

    /// Parses the record at `offset`; `nil` when it is malformed: an empty name, an unknown type
    /// code, an oversized value, or any part running past the end of `bytes` (the header section).
    @inline(__always)
    package static func parse(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> HeaderRecord? {
        let count = bytes.count
        guard offset < count else { return nil }
        let nameLength = Int(bytes[offset])
        let nameStart = offset + 1
        // The spec requires at least one byte of name.
        guard nameLength > 0, nameStart + nameLength < count else { return nil }
        let typeCode = bytes[nameStart + nameLength]
        var valueStart = nameStart + nameLength + 1
        let valueLength: Int
        switch typeCode {
        case 0, 1: valueLength = 0
        case 2: valueLength = 1
        case 3: valueLength = 2
        case 4: valueLength = 4
        case 5, 8: valueLength = 8
        case 9: valueLength = 16
        case 6, 7:
            guard valueStart + 2 <= count else { return nil }
            valueLength = Int(bytes[valueStart]) << 8 | Int(bytes[valueStart + 1])
            guard valueLength <= maximumVariableValueLength else { return nil }
            valueStart += 2
        default:
            return nil
        }
        let end = valueStart + valueLength
        guard end <= count else { return nil }
        return HeaderRecord(
            nameStart: nameStart, nameLength: nameLength, typeCode: typeCode,
            valueStart: valueStart, valueLength: valueLength, end: end
        )
    }
}
