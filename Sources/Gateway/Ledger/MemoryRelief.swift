import CSystemShims
import Synchronization

/// Gives memory back to the system after a large request.
///
/// glibc keeps freed heap memory in its arenas for reuse; after one large body (a 30 MiB prompt, a
/// hundred thousand parsed messages) that is tens of MiB the process holds but no longer uses.
/// `malloc_trim` returns it. It walks the arenas, so it runs only after requests of at least
/// ``threshold`` bytes, and at most once a second.
enum MemoryRelief {
    static let threshold = 1 << 20
    private static let origin = ContinuousClock.now
    /// The second (counted from `origin`) of the last trim.
    private static let lastTrim = Atomic<Int64>(-1)

    static func afterRequest(bodyBytes: Int) {
        guard bodyBytes >= Self.threshold else { return }
        let second = Self.origin.duration(to: .now).components.seconds
        let last = Self.lastTrim.load(ordering: .relaxed)
        guard second > last, Self.lastTrim.compareExchange(expected: last, desired: second, ordering: .relaxed).exchanged else { return }
        _ = sluice_malloc_trim(0)
    }
}
