internal import CJSONScan

/// Finding the bytes JSON strings treat specially — `"`, `\` and control characters below 0x20 —
/// sixteen at a time (SSE2; eight at a time elsewhere). Shared by the parsers and writers that copy
/// the runs between them in one go. The scan itself is C (`CJSONScan`), inlined like Swift.
enum JSONSpecialBytes {
    /// The index of the first special byte in `bytes[from...]`, or `bytes.count` when there is none.
    @inline(__always)
    static func first(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = bytes.baseAddress, start < bytes.count else { return bytes.count }
        return sluice_json_first_special(base.assumingMemoryBound(to: UInt8.self), start, bytes.count)
    }
}
