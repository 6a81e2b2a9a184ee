import Foundation
import NIOCore
import Synchronization

/// The Responses API's response store (`responses.store`): each kept response's conversation, the
/// request's input items followed by its output items, in the ``Store``, per identity, for
/// `responses.retentionDays`, so that a later request's `previous_response_id` continues it.
///
/// A client may send `previous_response_id` as soon as it has read `response.completed`, and the
/// stream writes that event before the exchange saves the response. So a streamed response that will
/// be kept is registered as pending before its first byte (``begin(id:)``), and a lookup of a pending
/// id waits for its ``save(id:identity:items:retentionDays:)`` or ``abandon(id:)``, one of which
/// always follows. This covers one process; replicas sharing a store see a response once it is saved.
package final class ResponseMemory: Sendable {
    private let store: any Store
    private let pending = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    package init(store: any Store) {
        self.store = store
    }

    /// Registers a response that will be saved or abandoned.
    func begin(id: String) {
        self.pending.withLock { pending in
            if pending[id] == nil { pending[id] = [] }
        }
    }

    /// Keeps a response's conversation (a JSON array of input items). Throws what the store throws;
    /// the id stops being pending either way.
    func save(id: String, identity: String, items: ByteBuffer, retentionDays: Int) async throws {
        defer { self.release(id) }
        let now = Date()
        try await self.store.saveResponse(
            StoredResponse(
                id: id, identity: identity, createdAt: now, expiresAt: now.addingTimeInterval(Double(retentionDays) * 86_400), items: items
            )
        )
    }

    /// A pending response that will not be kept (its stream failed or was cut).
    func abandon(id: String) {
        self.release(id)
    }

    /// The conversation of `id` when `identity` kept it and it has not expired; waits for it while it
    /// is still being written.
    func load(id: String, identity: String) async throws -> ByteBuffer? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waits = self.pending.withLock { pending -> Bool in
                guard pending[id] != nil else { return false }
                pending[id, default: []].append(continuation)
                return true
            }
            if !waits { continuation.resume() }
        }
        return try await self.store.storedResponse(id: id, identity: identity, at: Date())?.items
    }

    private func release(_ id: String) {
        let waiters = self.pending.withLock { $0.removeValue(forKey: id) } ?? []
        for waiter in waiters { waiter.resume() }
    }
}
