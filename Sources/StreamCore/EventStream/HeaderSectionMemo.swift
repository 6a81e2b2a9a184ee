/// A copy of the last small header section seen, kept inline (no allocation), so a frame whose header
/// section is byte-for-byte the previous one can reuse what was worked out from those bytes.
///
/// Bedrock writes the same headers on every event of a kind: every `contentBlockDelta` frame of a
/// stream carries the same 87 bytes (`:event-type`, `:content-type`, `:message-type`). Checking
/// those records (the decoder) and finding the message and event type in them (the translators)
/// profiled at about 300 and 450 instructions per frame; comparing 87 bytes costs about 30. What is
/// reused must depend on the section's bytes alone, which the header checks and the type lookups do.
package struct HeaderSectionMemo {
    /// Sections up to this size are remembered; Bedrock's are 60–100 bytes. Longer ones are never
    /// matched, so they are worked out every time.
    package static let capacity = 128

    private var storage: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                          UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
        = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// The remembered section's length; `-1` when nothing is remembered.
    private var count = -1

    package init() {}

    /// Whether `section` is exactly the remembered section.
    @inline(__always)
    package mutating func matches(_ section: UnsafeRawBufferPointer) -> Bool {
        guard section.count == self.count else { return false }
        return withUnsafeBytes(of: &self.storage) { stored in
            UnsafeRawBufferPointer(rebasing: stored[..<section.count]).hasSameBytes(as: section)
        }
    }

    /// Remembers `section` (forgets, when it is too long to keep).
    package mutating func remember(_ section: UnsafeRawBufferPointer) {
        guard section.count <= Self.capacity else {
            self.count = -1
            return
        }
        withUnsafeMutableBytes(of: &self.storage) { stored in
            stored.copyMemory(from: section)
        }
        self.count = section.count
    }
}
