package import Foundation
package import Logging
import NIOCore
import StreamCore
import Synchronization

/// Standard error, one whole line per write, shared by the log handler and the audit sink so lines
/// from concurrent requests never interleave.
package enum LogOutput {
    private static let lock = Mutex(())

    package static func writeLine(_ line: String) {
        var line = line
        line.append("\n")
        lock.withLock { _ in
            line.withUTF8 { bytes in
                var remaining = UnsafeRawBufferPointer(bytes)
                while !remaining.isEmpty {
                    let written = write(2, remaining.baseAddress, remaining.count)
                    if written <= 0 {
                        if written < 0, errno == EINTR { continue }
                        return
                    }
                    remaining = UnsafeRawBufferPointer(rebasing: remaining[written...])
                }
            }
        }
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T05:40:01.123Z`.
    package static func timestamp(_ date: Date = Date()) -> String {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let milliseconds = Int((date.timeIntervalSince1970 - Double(seconds)) * 1000)
        let parts = UTCFields.of(seconds)
        let two = UTCFields.two
        let millis = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
    }
}

/// swift-log's output as one JSON object per line on standard error: `ts`, `level`, `logger`,
/// `msg`, then the metadata (the request's `request.id` among it) as string fields.
package struct JSONLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level = .info
    package var metadataProvider: Logger.MetadataProvider?
    private let label: String

    package init(label: String) {
        self.label = label
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var fields = self.metadata
        if let provided = self.metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        if let error = event.error { fields["error"] = .string("\(error)") }
        var buffer = ByteBuffer()
        buffer.writeStaticString("{\"ts\":")
        buffer.writeJSONString(LogOutput.timestamp())
        buffer.writeStaticString(",\"level\":")
        buffer.writeJSONString(event.level.rawValue)
        buffer.writeStaticString(",\"logger\":")
        buffer.writeJSONString(self.label)
        buffer.writeStaticString(",\"msg\":")
        buffer.writeJSONString(event.message.description)
        for key in fields.keys.sorted() where !["ts", "level", "logger", "msg"].contains(key) {
            guard let value = fields[key] else { continue }
            buffer.writeStaticString(",")
            buffer.writeJSONString(key)
            buffer.writeStaticString(":")
            buffer.writeJSONString(value.description)
        }
        buffer.writeStaticString("}")
        LogOutput.writeLine(String(buffer: buffer))
    }
}

/// The UTC calendar fields of a time in whole seconds since 1970 (glibc's `gmtime_r`), for the
/// log's timestamps and the HTTP `Date` header.
enum UTCFields {
    static func of(_ seconds: Int) -> tm {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return parts
    }

    /// Two digits, zero-padded.
    static func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
