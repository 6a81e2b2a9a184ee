import Synchronization

/// Group commit for the usage ledger: rows that arrive while a write is under way go together in the
/// next one (one statement, one commit, one flush of the log for all of them); a row that finds no
/// write under way goes at once, so a lone request waits for nothing. Each caller returns when its own
/// row is committed, or throws that write's error.
final class GroupCommit<Row: Sendable>: Sendable {
    /// Told once its row is committed, or of the write's error.
    typealias Done = @Sendable (Result<Void, any Error>) -> Void

    private let pending = Mutex<(rows: [(Row, Done)], writing: Bool)>(([], false))
    private let maximumBatch: Int

    /// - Parameter maximumBatch: rows per write at most (the store's limit on one statement).
    init(maximumBatch: Int) {
        self.maximumBatch = maximumBatch
    }

    /// Returns once `row` is committed by `write` (with the rows that waited beside it).
    func commit(_ row: Row, write: @escaping @Sendable ([Row]) async throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            self.submit(row, write: write) { continuation.resume(with: $0) }
        }
    }

    /// Adds `row` to the next write and returns at once; `done` is called when it is committed. For
    /// a caller that waits on its own terms (``Ledger/write(_:)``): no task of its own per row.
    func submit(_ row: Row, write: @escaping @Sendable ([Row]) async throws -> Void, done: @escaping Done) {
        let startWriter = self.pending.withLock { pending in
            pending.rows.append((row, done))
            if pending.writing { return false }
            pending.writing = true
            return true
        }
        if startWriter { Task { await self.writeAll(write) } }
    }

    /// Writes what is pending, batch after batch, until nothing is.
    private func writeAll(_ write: @Sendable ([Row]) async throws -> Void) async {
        while true {
            let batch = self.pending.withLock { pending -> [(Row, Done)] in
                let batch = Array(pending.rows.prefix(self.maximumBatch))
                pending.rows.removeFirst(batch.count)
                if batch.isEmpty { pending.writing = false }
                return batch
            }
            if batch.isEmpty { return }
            let result: Result<Void, any Error>
            do {
                try await write(batch.map(\.0))
                result = .success(())
            } catch {
                result = .failure(error)
            }
            for (_, done) in batch { done(result) }
        }
    }
}
