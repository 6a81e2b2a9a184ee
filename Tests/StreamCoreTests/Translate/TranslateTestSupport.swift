import Foundation
import NIOCore
import StreamCore
import Testing

/// Helpers shared by the Translate suites: run the mapper on JSON text and read results back
/// with Foundation's JSONSerialization, so tests compare structures rather than strings.
enum TranslateTestSupport {
    static let claude = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    static let nova = "us.amazon.nova-pro-v1:0"
    static let llama = "us.meta.llama3-3-70b-instruct-v1:0"

    static func map(
        _ json: String,
        configuration: ChatRequestMapper.Configuration = ChatRequestMapper.Configuration()
    ) throws -> ConverseRequest {
        try ChatRequestMapper(configuration: configuration).map(ByteBuffer(string: json))
    }

    /// Maps and returns the Converse body as a dictionary.
    static func converse(
        _ json: String,
        configuration: ChatRequestMapper.Configuration = ChatRequestMapper.Configuration()
    ) throws -> [String: Any] {
        try object(map(json, configuration: configuration).body)
    }

    /// The error the mapper throws for `json`, failing the test if it does not throw.
    static func mapError(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> OpenAIRequestError {
        try #require(throws: OpenAIRequestError.self, sourceLocation: sourceLocation) {
            try ChatRequestMapper().map(ByteBuffer(string: json))
        }
    }

    static func object(_ buffer: ByteBuffer) throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView), options: [.fragmentsAllowed])
        return try #require(value as? [String: Any])
    }

    static func parse(_ json: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
    }

    /// Structural equality of a decoded value with JSON text (key order and number spelling ignored).
    static func isSame(_ value: Any?, _ expectedJSON: String) throws -> Bool {
        guard let value else { return false }
        return equal(value, try parse(expectedJSON))
    }

    /// Recursive equality over JSONSerialization output (numbers compared by value).
    static func equal(_ lhs: Any, _ rhs: Any) -> Bool {
        switch (lhs, rhs) {
        case (let lhs as String, let rhs as String):
            return lhs == rhs
        case (let lhs as [String: Any], let rhs as [String: Any]):
            guard Set(lhs.keys) == Set(rhs.keys) else { return false }
            return lhs.allSatisfy { key, value in rhs[key].map { equal(value, $0) } ?? false }
        case (let lhs as [Any], let rhs as [Any]):
            return lhs.count == rhs.count && zip(lhs, rhs).allSatisfy { equal($0, $1) }
        case (is NSNull, is NSNull):
            return true
        case (let lhs as NSNumber, let rhs as NSNumber):
            return lhs.doubleValue == rhs.doubleValue
        default:
            return false
        }
    }

    /// A request with the given messages JSON (and optional extra top-level fields).
    static func request(model: String = claude, messages: String, extra: String = "") -> String {
        "{\"model\":\"\(model)\",\"messages\":\(messages)\(extra.isEmpty ? "" : ",\(extra)")}"
    }

    /// A 1×1 PNG, as real base64.
    static let pngBase64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    /// A tiny JPEG header (enough for format sniffing).
    static let jpegBase64 = Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A, 0x46, 0x49, 0x46, 0x00, 0x01]).base64EncodedString()
    static let gifBase64 = Data("GIF89a\u{01}\u{00}\u{01}\u{00}".utf8).base64EncodedString()
    static let webpBase64 = Data([0x52, 0x49, 0x46, 0x46, 0x24, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x20]).base64EncodedString()
}

extension Dictionary where Key == String, Value == Any {
    /// `body["messages"]` as an array of dictionaries.
    func objects(_ key: String) -> [[String: Any]] {
        (self[key] as? [Any])?.compactMap { $0 as? [String: Any] } ?? []
    }

    func object(_ key: String) -> [String: Any]? {
        self[key] as? [String: Any]
    }
}
