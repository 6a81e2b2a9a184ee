import Foundation

/// A parsed JSON document for assertions. Foundation's parser is used on purpose: it is independent
/// of the simulator's own writer, so the tests check the bytes against another implementation.
struct JSONValue: @unchecked Sendable {
    // Safe to share: the value is an immutable tree of Foundation containers, never mutated.
    let raw: Any

    init(raw: Any) {
        self.raw = raw
    }

    init(parsing text: String) throws {
        self.raw = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    subscript(key: String) -> JSONValue? {
        (self.raw as? [String: Any])?[key].map(JSONValue.init(raw:))
    }

    subscript(index: Int) -> JSONValue? {
        guard let array = self.raw as? [Any], array.indices.contains(index) else { return nil }
        return JSONValue(raw: array[index])
    }

    var string: String? { self.raw as? String }
    var int: Int? { (self.raw as? NSNumber)?.intValue }
    var array: [JSONValue]? { (self.raw as? [Any])?.map(JSONValue.init(raw:)) }
    var keys: Set<String> { Set((self.raw as? [String: Any])?.keys.map { $0 } ?? []) }
    var isNull: Bool { self.raw is NSNull }
}
