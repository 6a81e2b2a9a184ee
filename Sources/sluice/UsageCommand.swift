import ArgumentParser
import Foundation
import Gateway

/// `sluice usage`: requests, tokens and cost from the usage ledger.
struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Show requests, tokens and cost per identity, group or model.",
        discussion: "Example: sluice usage --by model --since 30d"
    )

    @Option(help: "Group by identity, group, model or upstream.")
    var by: String = "identity"

    @Option(help: "How far back: e.g. 7d, 24h, 2w.")
    var since: String = "7d"

    @OptionGroup var store: TokenCommand.StoreOptions

    func validate() throws {
        guard UsageReport.Grouping(rawValue: self.by) != nil else { throw ValidationError("--by must be identity, group, model or upstream") }
        guard ClientToken.parseDuration(self.since) != nil else { throw ValidationError("--since must look like 7d, 24h or 2w") }
    }

    func run() async throws {
        guard let grouping = UsageReport.Grouping(rawValue: self.by), let window = ClientToken.parseDuration(self.since) else { return }
        let store = try await self.store.open()
        let totals: [UsageTotal]
        do {
            totals = try await store.usageTotals(since: Date().addingTimeInterval(-Double(window.components.seconds)), bucketSeconds: nil)
        } catch {
            try? await store.close()
            throw error
        }
        try? await store.close()
        let report = UsageReport(totals: totals, by: grouping)
        let rows = report.rows.map { row in
            [
                row.key, String(row.requests), String(row.inputTokens), String(row.outputTokens), String(row.cacheReadTokens),
                String(row.cacheWriteTokens), String(format: "%.4f", row.costUSD),
            ]
        }
        print(TextTable.render(header: [self.by.uppercased(), "REQUESTS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST USD"], rows: rows))
    }
}
