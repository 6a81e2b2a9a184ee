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

    /// The end of the string whose text starts at `start` (after its opening quote), every escape
    /// checked: `.success` with the index of its closing quote, `.failure` with the offset of a
    /// control byte or a bad escape's backslash, or `bytes.count` when the string is not closed.
    @inline(__always)
    static func stringEnd(in bytes: UnsafeRawBufferPointer, from start: Int) -> Result<Int, JSONScanner.Failure> {
        guard let base = bytes.baseAddress, start < bytes.count else { return .failure(JSONScanner.Failure(offset: bytes.count)) }
        let end = sluice_json_string_end(base.assumingMemoryBound(to: UInt8.self), start, bytes.count)
        return end >= 0 ? .success(end) : .failure(JSONScanner.Failure(offset: -1 - end))
    }
}
