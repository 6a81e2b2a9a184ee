import Gateway
import Testing

@Suite("MemoryRelief: malloc arenas")
struct MemoryReliefTests {
    @Test("one arena per two cores, at least one; the environment's own choice is left alone")
    func arenaLimit() {
        #expect(MemoryRelief.arenaLimit(environment: [:], processors: 1) == 1)
        #expect(MemoryRelief.arenaLimit(environment: [:], processors: 2) == 1)
        #expect(MemoryRelief.arenaLimit(environment: [:], processors: 16) == 8)
        #expect(MemoryRelief.arenaLimit(environment: ["MALLOC_ARENA_MAX": "4"], processors: 16) == nil)
        #expect(MemoryRelief.arenaLimit(environment: ["GLIBC_TUNABLES": "glibc.malloc.arena_max=3"], processors: 16) == nil)
        // Other tunables do not count as a choice of arenas.
        #expect(MemoryRelief.arenaLimit(environment: ["GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"], processors: 16) == 8)
    }

    #if canImport(Glibc)
    @Test("glibc takes the cap")
    func limitArenasSetsIt() {
        // mallopt only lowers the number of arenas made from now on; this process's tests run as before.
        #expect(MemoryRelief.limitArenas(environment: [:], processors: 64) == 32)
        #expect(MemoryRelief.limitArenas(environment: ["MALLOC_ARENA_MAX": "32"], processors: 64) == nil)
    }
    #endif
}
