package import NIOCore

/// What a Bedrock-native request body (InvokeModel for Anthropic models, Converse) says about its
/// size, read without building it: the passthrough routes forward the body unchanged and only need
/// these for the audit line and the limits' reservation.
package struct BedrockRequestSummary: Sendable, Hashable {
    /// Entries in the top-level `messages` array.
    package var messageCount: Int?
    /// `max_tokens` (InvokeModel, Anthropic) or `inferenceConfig.maxTokens` (Converse).
    package var maxTokens: Int?

    package init(messageCount: Int? = nil, maxTokens: Int? = nil) {
        self.messageCount = messageCount
        self.maxTokens = maxTokens
    }

    /// Reads the summary; a body that is not a JSON object (Bedrock will refuse it) gives what was
    /// read before the malformed part, possibly nothing.
    package init(body: ByteBuffer) {
        self.init()
        body.withUnsafeReadableBytes { bytes in
            var scanner = JSONScanner(bytes)
            try? scanner.forEachMember { (scanner: inout JSONScanner, key: Range<Int>) throws(JSONScanner.Failure) in
                if scanner.bytes(in: key, equal: "messages"), scanner.peek() == UInt8(ascii: "[") {
                    self.messageCount = try Self.countElements(&scanner)
                } else if scanner.bytes(in: key, equal: "max_tokens"), let value = try? Self.integer(&scanner) {
                    self.maxTokens = value
                } else if scanner.bytes(in: key, equal: "inferenceConfig"), scanner.peek() == UInt8(ascii: "{") {
                    try scanner.forEachMember { (scanner: inout JSONScanner, key: Range<Int>) throws(JSONScanner.Failure) in
                        if scanner.bytes(in: key, equal: "maxTokens"), let value = try? Self.integer(&scanner) {
                            self.maxTokens = value
                        } else {
                            try scanner.skipValue()
                        }
                    }
                } else {
                    try scanner.skipValue()
                }
            }
        }
    }

    /// An integer value, or the value skipped when it is some other number or type.
    private static func integer(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) -> Int? {
        var probe = scanner
        if let value = try? probe.readInteger() {
            scanner = probe
            return value
        }
        try scanner.skipValue()
        return nil
    }

    private static func countElements(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) -> Int {
        try scanner.consume(UInt8(ascii: "["))
        if scanner.peek() == UInt8(ascii: "]") {
            try scanner.consume(UInt8(ascii: "]"))
            return 0
        }
        var count = 0
        while true {
            try scanner.skipValue()
            count += 1
            if scanner.peek() == UInt8(ascii: ",") {
                try scanner.consume(UInt8(ascii: ","))
            } else {
                try scanner.consume(UInt8(ascii: "]"))
                return count
            }
        }
    }
}
