import CSystemShims
import Synchronization

/// Random bits for identifiers: request ids, response ids (`chatcmpl-…`, `resp_…`), ledger row keys.
///
/// The system's secure generator, drawn 4 KiB at a time: `SystemRandomNumberGenerator` makes a
/// system call (`getrandom`) for every eight bytes, which was nine a request. Tokens and other
/// secrets do not use it: they take the system's generator directly, and nothing of theirs is kept.
struct IdentifierRandom: RandomNumberGenerator {
    mutating func next() -> UInt64 {
        Self.pool.withLock { $0.next() }
    }

    private static let pool = Mutex(Pool())

    private struct Pool {
        private var words = [UInt64](repeating: 0, count: 512)
        private var index = 512

        mutating func next() -> UInt64 {
            if self.index == self.words.count {
                let filled = self.words.withUnsafeMutableBytes { sluice_fill_random($0.baseAddress, $0.count) } == 0
                if !filled {
                    // The system gave nothing in bulk: one word at a time, as the standard library does.
                    var system = SystemRandomNumberGenerator()
                    return system.next()
                }
                self.index = 0
            }
            defer { self.index += 1 }
            return self.words[self.index]
        }
    }
}
