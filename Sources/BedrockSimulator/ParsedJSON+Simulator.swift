internal import NIOCore
internal import StreamCore

/// The simulator reads request bodies and scenario `tool_input` with StreamCore's parser, the
/// package's one JSON layer: order-preserving, numbers kept as written (a `tool_input` of `{"n":1}`
/// is written back as `1`, not `1.0`), UTF-8 validated, nesting bounded.
extension ParsedJSON {
    /// Deep enough for any real request; bounds recursion on hostile input.
    static let simulatorNestingDepth = 128

    static func parse(_ buffer: ByteBuffer) throws(JSONParseError) -> ParsedJSON {
        let result: Result<ParsedJSON, JSONParseError> = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(JSONParseError) -> ParsedJSON in try JSONParser.parse(bytes, maximumNestingDepth: Self.simulatorNestingDepth) }
        }
        return try result.get()
    }

    static func parse(_ text: String) throws(JSONParseError) -> ParsedJSON {
        try JSONParser.parse(text, maximumNestingDepth: Self.simulatorNestingDepth)
    }
}
