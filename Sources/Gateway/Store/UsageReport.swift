import Foundation
import StreamCore

/// Totals of the usage ledger grouped by identity, group, model or upstream (`sluice usage`).
package struct UsageReport: Sendable {
    package enum Grouping: String, Sendable, CaseIterable {
        case identity, group, model, upstream
    }

    package struct Row: Sendable, Hashable {
        package var key: String
        package var requests = 0
        package var inputTokens = 0
        package var outputTokens = 0
        package var cacheReadTokens = 0
        package var cacheWriteTokens = 0
        package var costUSD = 0.0
    }

    package var rows: [Row]

    /// A request of a member of several groups counts once for each of them.
    package init(records: [UsageRecord], by grouping: Grouping) {
        var table: [String: Row] = [:]
        for record in records {
            let keys: [String]
            switch grouping {
            case .identity: keys = [record.identity]
            case .group: keys = record.groups.isEmpty ? ["(none)"] : record.groups
            case .model: keys = [record.resolvedModel]
            case .upstream: keys = [record.upstream ?? "(none)"]
            }
            for key in keys {
                var row = table[key] ?? Row(key: key)
                row.requests += 1
                row.inputTokens += record.usage.inputTokens
                row.outputTokens += record.usage.outputTokens
                row.cacheReadTokens += record.usage.cacheReadInputTokens
                row.cacheWriteTokens += record.usage.cacheWriteInputTokens
                row.costUSD += record.costUSD
                table[key] = row
            }
        }
        self.rows = table.values.sorted { ($0.costUSD, $0.requests, $1.key) > ($1.costUSD, $1.requests, $0.key) }
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
