import CSystemShims
import Synchronization

/// Gives memory back to the system after a large request.
///
/// glibc keeps freed heap memory in its arenas for reuse; after one large body (a 30 MiB prompt, a
/// hundred thousand parsed messages) that is tens of MiB the process holds but no longer uses.
/// `malloc_trim` returns it. It walks the arenas, so it runs only after requests of at least
/// ``threshold`` bytes, and at most once a second.
package enum MemoryRelief {
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

    /// Caps glibc's malloc arenas for a serving process: one per two cores, unless the environment
    /// already chose (`MALLOC_ARENA_MAX`, or `glibc.malloc.arena_max` in `GLIBC_TUNABLES`). Call it
    /// before the server's threads start.
    ///
    /// glibc gives each thread that meets a locked arena a new one, up to eight per core, and memory
    /// freed into one arena is not reused by the others: 1,000 streams whose work moves between
    /// event loops and the task pool spread over a dozen arenas. `bash Benchmarks/wire.sh`, 1,000
    /// streams on 2 cores, resident memory per stream: OpenAI 80 KiB with glibc's default, 50–53
    /// with this cap; `/bedrock` 80 and 70–75; the same CPU per chunk within the runs' noise.
    ///
    /// - Returns: the cap set, or `nil` when the environment chose or the C library has none.
    @discardableResult
    package static func limitArenas(environment: [String: String], processors: Int) -> Int? {
        guard let count = Self.arenaLimit(environment: environment, processors: processors) else { return nil }
        return sluice_malloc_set_arena_max(Int32(count)) == 1 ? count : nil
    }

    /// The cap ``limitArenas(environment:processors:)`` sets: `nil` when the environment chose.
    package static func arenaLimit(environment: [String: String], processors: Int) -> Int? {
        if environment["MALLOC_ARENA_MAX"] != nil { return nil }
        if let tunables = environment["GLIBC_TUNABLES"], tunables.contains("glibc.malloc.arena_max") { return nil }
        return max(1, processors / 2)
    }
}
