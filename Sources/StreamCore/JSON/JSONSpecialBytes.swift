/// Finding the bytes JSON strings treat specially — `"`, `\` and control characters below 0x20 —
/// eight at a time. Shared by the parsers and writers that copy the runs between them in one go.
enum JSONSpecialBytes {
    /// The index of the first special byte in `bytes[from...]`, or `bytes.count` when there is none.
    @inline(__always)
    static func first(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return bytes.count }
        let count = bytes.count
        var index = start
        while index &+ 8 <= count {
            let flags = Self.flags(UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self)))
            if flags != 0 { return index &+ flags.trailingZeroBitCount &>> 3 }
            index &+= 8
        }
        while index < count {
            let byte = base.load(fromByteOffset: index, as: UInt8.self)
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { return index }
            index &+= 1
        }
        return count
    }

    /// The high bit of each byte of `word` that is `"`, `\` or below 0x20 (SWAR "has zero byte" on
    /// `word ^ pattern`, and "has byte less than n"). Bits above the lowest one may be false positives
    /// from borrows; the lowest one is always exact, which is all `first(in:from:)` uses.
    @inline(__always)
    static func flags(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quotes = word ^ (ones &* 0x22)
        let backslashes = word ^ (ones &* 0x5C)
        let hasQuote = (quotes &- ones) & ~quotes
        let hasBackslash = (backslashes &- ones) & ~backslashes
        let hasControl = (word &- ones &* 0x20) & ~word
        return (hasQuote | hasBackslash | hasControl) & 0x8080_8080_8080_8080
    }
}
