package import Foundation
import StreamCore

/// Totals of the usage ledger grouped by identity, group, model or upstream, and optionally by time
/// bucket: `sluice usage` and the console's `/admin/api/usage` both print this, so they agree.
package struct UsageReport: Sendable {
    package enum Grouping: String, Sendable, CaseIterable {
        case identity, group, model, upstream
    }

    package struct Row: Sendable, Hashable {
        package var key: String
        /// The bucket's start, when the totals were per bucket.
        package var bucket: Date?
        package var requests = 0
        package var inputTokens = 0
        package var outputTokens = 0
        package var cacheReadTokens = 0
        package var cacheWriteTokens = 0
        package var costUSD = 0.0
    }

    package var rows: [Row]

    /// Rows by cost, then requests, highest first; per bucket, oldest bucket first. A request of a
    /// member of several groups counts once for each of them.
    package init(totals: [UsageTotal], by grouping: Grouping) {
        struct Key: Hashable {
            var key: String
            var bucket: Date?
        }
        var table: [Key: Row] = [:]
        for total in totals {
            let keys: [String]
            switch grouping {
            case .identity: keys = [total.identity]
            case .group: keys = total.groups.isEmpty ? ["(none)"] : total.groups
            case .model: keys = [total.resolvedModel]
            case .upstream: keys = [total.upstream ?? "(none)"]
            }
            for key in keys {
                let slot = Key(key: key, bucket: total.bucket)
                var row = table[slot] ?? Row(key: key, bucket: total.bucket)
                row.requests += total.requests
                row.inputTokens += total.usage.inputTokens
                row.outputTokens += total.usage.outputTokens
                row.cacheReadTokens += total.usage.cacheReadInputTokens
                row.cacheWriteTokens += total.usage.cacheWriteInputTokens
                row.costUSD += total.costUSD
                table[slot] = row
            }
        }
        let epoch = Date(timeIntervalSince1970: 0)
        self.rows = table.values.sorted {
            let (left, right) = ($0.bucket ?? epoch, $1.bucket ?? epoch)
            if left != right { return left < right }
            return ($0.costUSD, $0.requests, $1.key) > ($1.costUSD, $1.requests, $0.key)
        }
    }
}

/// Fixed-width text tables for the CLI.
package enum TextTable {
    package static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
