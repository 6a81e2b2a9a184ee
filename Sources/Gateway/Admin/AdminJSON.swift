import Foundation
import NIOCore
import StreamCore

/// Writes the admin API's JSON answers straight into a buffer: members in a fixed order, strings
/// escaped by StreamCore's writer, dates as ISO 8601 UTC, `null` for what is absent.
struct AdminJSON {
    private(set) var buffer = ByteBuffer()
    /// One flag per open object or array: whether the next member needs a comma before it.
    private var started: [Bool] = []

    init() {
        self.buffer.reserveCapacity(1_024)
    }

    private mutating func separate() {
        if let last = self.started.last {
            if last { self.buffer.writeStaticString(",") }
            self.started[self.started.count - 1] = true
        }
    }

    private mutating func key(_ key: StaticString?) {
        self.separate()
        if let key {
            self.buffer.writeStaticString("\"")
            self.buffer.writeStaticString(key)
            self.buffer.writeStaticString("\":")
        }
    }

    mutating func object(_ key: StaticString? = nil, _ body: (inout AdminJSON) -> Void) {
        self.key(key)
        self.buffer.writeStaticString("{")
        self.started.append(false)
        body(&self)
        self.started.removeLast()
        self.buffer.writeStaticString("}")
    }

    mutating func array(_ key: StaticString? = nil, _ body: (inout AdminJSON) -> Void) {
        self.key(key)
        self.buffer.writeStaticString("[")
        self.started.append(false)
        body(&self)
        self.started.removeLast()
        self.buffer.writeStaticString("]")
    }

    mutating func string(_ key: StaticString?, _ value: String?) {
        self.key(key)
        if let value { self.buffer.writeJSONString(value) } else { self.buffer.writeStaticString("null") }
    }

    mutating func int(_ key: StaticString?, _ value: Int) {
        self.key(key)
        self.buffer.writeDecimal(value)
    }

    /// A finite number, or `null` (JSON has no NaN or infinity).
    mutating func number(_ key: StaticString?, _ value: Double?) {
        self.key(key)
        if let value, value.isFinite { self.buffer.writeString(String(value)) } else { self.buffer.writeStaticString("null") }
    }

    mutating func bool(_ key: StaticString?, _ value: Bool) {
        self.key(key)
        if value { self.buffer.writeStaticString("true") } else { self.buffer.writeStaticString("false") }
    }

    mutating func date(_ key: StaticString?, _ value: Date?) {
        self.string(key, value.map(Self.timestamp))
    }

    mutating func strings(_ key: StaticString?, _ values: [String]) {
        self.array(key) { json in
            for value in values { json.string(nil, value) }
        }
    }

    /// `2026-12-05T21:00:00Z`: seconds precision, UTC.
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
    }
}
