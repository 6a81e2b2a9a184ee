import Synchronization

/// Group commit for the usage ledger: rows that arrive while a write is under way go together in the
/// next one (one statement, one commit, one flush of the log for all of them); a row that finds no
/// write under way goes at once, so a lone request waits for nothing. Each caller returns when its own
/// row is committed, or throws that write's error.
final class GroupCommit<Row: Sendable>: Sendable {
    private let pending = Mutex<(rows: [(Row, CheckedContinuation<Void, any Error>)], writing: Bool)>(([], false))
    private let maximumBatch: Int

    /// - Parameter maximumBatch: rows per write at most (the store's limit on one statement).
    init(maximumBatch: Int) {
        self.maximumBatch = maximumBatch
    }

    /// Returns once `row` is committed by `write` (with the rows that waited beside it).
    func commit(_ row: Row, write: @escaping @Sendable ([Row]) async throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startWriter = self.pending.withLock { pending in
                pending.rows.append((row, continuation))
                if pending.writing { return false }
                pending.writing = true
                return true
            }
            if startWriter { Task { await self.writeAll(write) } }
        }
    }

    /// Writes what is pending, batch after batch, until nothing is.
    private func writeAll(_ write: @Sendable ([Row]) async throws -> Void) async {
        while true {
            let batch = self.pending.withLock { pending -> [(Row, CheckedContinuation<Void, any Error>)] in
                let batch = Array(pending.rows.prefix(self.maximumBatch))
                pending.rows.removeFirst(batch.count)
                if batch.isEmpty { pending.writing = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                try await write(batch.map(\.0))
                for (_, continuation) in batch { continuation.resume() }
            } catch {
                for (_, continuation) in batch { continuation.resume(throwing: error) }
            }
        }
    }
}
