import Foundation

/// The admin API's query parameters, each checked on its own so a 400 names the one at fault.
enum AdminQuery {
    /// The longest window a query may ask for: older rows are left out rather than the request
    /// refused (`since=100000d` means "everything", within reason for one answer).
    static let maximumWindowSeconds: Int64 = 400 * 86_400

    /// `since`: a duration back from `now` (`90m`, `24h`, `7d`, `2w`, `30s`) or an ISO 8601 time.
    static func since(_ text: Substring?, defaultSeconds: Int64, now: Date) throws(GatewayError) -> Date {
        let earliest = now.addingTimeInterval(-Double(Self.maximumWindowSeconds))
        guard let text, !text.isEmpty else { return now.addingTimeInterval(-Double(defaultSeconds)) }
        if let seconds = Self.durationSeconds(text) {
            return now.addingTimeInterval(-Double(min(seconds, Self.maximumWindowSeconds)))
        }
        if let date = try? Date(String(text), strategy: .iso8601) {
            return max(date, earliest)
        }
        throw GatewayError.badRequest(
            "since must be a duration such as 90m, 24h, 7d or 2w, or an ISO 8601 time such as 2026-12-01T00:00:00Z; got '\(text.prefix(64))'",
            param: "since"
        )
    }

    /// A positive whole number and a unit; a number too large for the clock is the longest window.
    static func durationSeconds(_ text: Substring) -> Int64? {
        guard let unit = text.last, text.count >= 2 else { return nil }
        let digits = text.dropLast()
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        guard let scale = ClientToken.secondsPerUnit(unit) else { return nil }
        guard let value = Int64(digits) else { return Self.maximumWindowSeconds }
        guard value > 0 else { return nil }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? Self.maximumWindowSeconds : seconds
    }

    static func grouping(_ text: Substring?) throws(GatewayError) -> UsageReport.Grouping {
        guard let text, !text.isEmpty else { return .identity }
        guard let grouping = UsageReport.Grouping(rawValue: String(text)) else {
            throw GatewayError.badRequest("by must be identity, group, model or upstream; got '\(text.prefix(64))'", param: "by")
        }
        return grouping
    }

    enum Bucket: String {
        case hour, day

        var seconds: Int { self == .hour ? 3_600 : 86_400 }
    }

    static func bucket(_ text: Substring?) throws(GatewayError) -> Bucket? {
        guard let text, !text.isEmpty else { return nil }
        guard let bucket = Bucket(rawValue: String(text)) else {
            throw GatewayError.badRequest("bucket must be hour or day; got '\(text.prefix(64))'", param: "bucket")
        }
        return bucket
    }

    static let limits = 1...500

    static func limit(_ text: Substring?) throws(GatewayError) -> Int {
        guard let text, !text.isEmpty else { return 50 }
        guard let limit = Int(text), Self.limits.contains(limit) else {
            throw GatewayError.badRequest("limit must be a whole number from 1 to 500; got '\(text.prefix(64))'", param: "limit")
        }
        return limit
    }

    /// `before`: the `next` of a previous page (a ledger row id).
    static func before(_ text: Substring?) throws(GatewayError) -> Int64? {
        guard let text, !text.isEmpty else { return nil }
        guard let id = Int64(text), id > 0 else {
            throw GatewayError.badRequest("before must be the 'next' value of a previous page", param: "before")
        }
        return id
    }

    static func identity(_ text: Substring?) throws(GatewayError) -> String? {
        guard let text, !text.isEmpty else { return nil }
        guard text.utf8.count <= 256 else { throw GatewayError.badRequest("identity is longer than 256 bytes", param: "identity") }
        return String(text)
    }
}
