public import NIOCore

/// The value of one event-stream header: all ten wire types (EVENTSTREAM.md §3).
///
/// Byte arrays, strings and UUIDs are slices of the frame they were decoded from, so decoding makes
/// no copy; call ``stringValue`` only where a `String` is really needed.
public enum EventStreamHeaderValue: Hashable, Sendable {
    /// Wire types 0 (true) and 1 (false).
    case bool(Bool)
    /// Wire type 2: signed 8-bit.
    case byte(Int8)
    /// Wire type 3: signed 16-bit.
    case short(Int16)
    /// Wire type 4: signed 32-bit.
    case integer(Int32)
    /// Wire type 5: signed 64-bit.
    case long(Int64)
    /// Wire type 6: at most 32,767 bytes.
    case byteArray(ByteBuffer)
    /// Wire type 7: UTF-8 text, at most 32,767 bytes.
    case string(ByteBuffer)
    /// Wire type 8: milliseconds since 1970-01-01T00:00Z, signed.
    case timestamp(Int64)
    /// Wire type 9: exactly 16 raw bytes.
    case uuid(ByteBuffer)

    /// A string value from Swift text (for encoders and tests).
    public init(string: String) {
        self = .string(ByteBuffer(string: string))
    }

    /// The text of a ``string(_:)`` value; `nil` for other types. Allocates a `String`.
    public var stringValue: String? {
        guard case .string(let bytes) = self else { return nil }
        return String(buffer: bytes)
    }

    /// The wire type code, 0...9.
    package var typeCode: UInt8 {
        switch self {
        case .bool(let value): value ? 0 : 1
        case .byte: 2
        case .short: 3
        case .integer: 4
        case .long: 5
        case .byteArray: 6
        case .string: 7
        case .timestamp: 8
        case .uuid: 9
        }
    }
}

/// One decoded header: its name (a slice of the frame) and its value.
public struct EventStreamHeader: Hashable, Sendable {
    /// The header name's UTF-8 bytes, 1–255 of them.
    public var name: ByteBuffer
    public var value: EventStreamHeaderValue

    public init(name: ByteBuffer, value: EventStreamHeaderValue) {
        self.name = name
        self.value = value
    }

    /// A header from Swift text (for encoders and tests).
    public init(name: String, value: EventStreamHeaderValue) {
        self.init(name: ByteBuffer(string: name), value: value)
    }
}
