import Foundation
import Logging
import StreamCore

/// Where audit lines go: one JSON object per line. The server writes them to standard error; tests
/// capture them.
package struct AuditSink: Sendable {
    package var write: @Sendable (String) -> Void

    package init(write: @escaping @Sendable (String) -> Void) {
        self.write = write
    }

    /// Standard error, in the same stream (and the same envelope) as the JSON log lines.
    package static let standardError = AuditSink { line in
        LogOutput.writeLine(line)
    }
}

/// The record of every request: the usage ledger in the store, the audit lines and the request
/// metrics. Every request that got past reading its headers ends here exactly once, admitted
/// (``RequestAccount``) or refused (``recordRefused(_:route:requested:error:requestID:arrived:)``,
/// ``recordUnauthenticated(route:failure:requestID:)``).
package struct Ledger: Sendable {
    package let store: any Store
    package let audit: AuditSink
    package let metrics: GatewayMetrics
    let now: @Sendable () -> Date
    /// Rows waiting for an unreachable store.
    package let backlog = LedgerBacklog()
    private static let logger = Logger(label: "sluice.ledger")

    /// How a row fared: written (durable), queued in memory for a store that failed, or dropped
    /// because the queue was full.
    enum Written {
        case stored, queued(any Error), dropped(any Error)
    }

    /// How long a response's end waits for its row: a store that does not answer by then (a
    /// database restarting, a connection pool waiting for a server that is gone) gets the row
    /// through the queue, and the response ends. The write may still land; the row's key keeps the
    /// queued copy from being stored twice.
    static let writeWait: Duration = .seconds(2)

    /// Writes a usage row, or queues it when the store fails, is slow, or is already known to be failing.
    func write(_ record: UsageRecord) async -> Written {
        if self.backlog.isBacklogged { return self.queue(record, StoreUnavailable()) }
        let store = self.store
        // Handed to the store's group commit, which says when the row is durable: no task per row.
        let result = await BoundedWait<Result<Void, any Error>>.value(within: Self.writeWait) { finish in
            store.recordUsage(record, then: finish)
        }
        switch result {
        case .success?: return .stored
        case .failure(let error)?: return self.queue(record, error)
        case nil: return self.queue(record, StoreTimeout())
        }
    }

    private func queue(_ record: UsageRecord, _ error: any Error) -> Written {
        let (queued, first) = self.backlog.enqueue(record)
        guard queued else {
            self.metrics.ledgerRowDropped()
            Self.logger.error("usage row dropped: the store is unreachable and the queue is full", metadata: ["request.id": "\(record.requestID)"])
            return .dropped(error)
        }
        if first {
            Self.logger.warning("the store did not take a usage row: rows are queued in memory until it answers", metadata: ["store.error": "\(type(of: error))"])
        }
        return .queued(error)
    }

    /// Why a row went straight to the queue: earlier rows are still waiting for the store.
    struct StoreUnavailable: Error {}
    /// The store did not confirm the write within ``writeWait``.
    struct StoreTimeout: Error {}

    /// A request refused before it was authenticated: an audit line (there is no identity to charge).
    func recordUnauthenticated(route: String, failure: AuthenticationFailure, requestID: String) {
        var line = AuditLine(event: "refused")
        line.add("request.id", requestID)
        line.add("route", route)
        line.add("status", 401)
        line.add("reason", failure.code)
        self.audit.write(line.text)
    }

    /// A call of the admin API by an authenticated caller (admin or not): who, what, how it ended,
    /// and the token it created or revoked.
    func recordAdmin(
        _ caller: Caller, method: String, route: String, status: Int, requestID: String, tokenPrefix: String?, tokenIdentity: String?
    ) {
        var line = AuditLine(event: "admin")
        line.add("request.id", requestID)
        line.add("identity", caller.identity)
        line.add("auth", caller.authentication)
        line.add("method", method)
        line.add("route", route)
        line.add("status", status)
        if let tokenPrefix { line.add("token.prefix", tokenPrefix) }
        if let tokenIdentity { line.add("token.identity", tokenIdentity) }
        self.audit.write(line.text)
    }

    /// A request refused after authentication but before it was admitted (a body too large, a
    /// malformed request): a ledger row and an audit line, like every other request.
    package func recordRefused(_ caller: Caller, route: String, requested: String, error: GatewayError, requestID: String, arrived: ContinuousClock.Instant) async {
        let account = RequestAccount(
            ledger: self, caller: caller, route: route, requestedModel: requested, resolvedModel: requested, messageCount: nil,
            prices: PriceTable(), requestID: requestID, arrived: arrived
        )
        await account.finish(error)
    }

    /// The request line: who asked for what, written when the request is admitted; the response
    /// line follows from ``RequestAccount/finish(status:finishReason:usage:firstByte:)``.
    func recordAdmitted(_ account: RequestAccount) {
        var line = AuditLine(event: "request")
        account.describe(into: &line)
        self.audit.write(line.text)
    }

    static func makeRequestID() -> String {
        var generator = IdentifierRandom()
        return String(generator.next(), radix: 16) + String(generator.next() & 0xFFFF_FFFF, radix: 16)
    }
}
