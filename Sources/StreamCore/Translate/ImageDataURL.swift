import FoundationEssentials

/// An image from an OpenAI `image_url` part, decoded from a `data:` URL.
///
/// Bedrock takes image bytes, not URLs, and the gateway does not fetch remote URLs on a client's
/// behalf (no server-side request forgery, no unbounded downloads), so only `data:` URLs are accepted.
struct ImageDataURL: Sendable {
    /// Bedrock's image format name.
    var format: StaticString
    /// Standard base64 with padding, as Bedrock's JSON `source.bytes` wants.
    var base64: String

    enum Failure: Error {
        case notDataURL
        case notBase64Encoded
        case unsupportedMediaType
        case invalidBase64
        case empty

        var reason: String {
            switch self {
            case .notDataURL:
                "only data: URLs (data:image/png;base64,…) are supported; Bedrock cannot fetch remote images."
            case .notBase64Encoded: "the data: URL must be base64-encoded (;base64,)."
            case .unsupportedMediaType: "the image type must be image/png, image/jpeg, image/gif or image/webp."
            case .invalidBase64: "the image data is not valid base64."
            case .empty: "the image data is empty."
            }
        }
    }

    /// Parses `data:image/<type>[;params];base64,<data>`.
    ///
    /// The bytes are decoded (which validates them) and re-encoded, so whitespace-free, padded
    /// base64 goes upstream whatever the client sent. When the bytes' signature names a different
    /// supported format than the media type (clients label screenshots `image/png` that are JPEG),
    /// the signature wins: Bedrock checks the bytes against `format` and would refuse the request.
    init(url: String) throws(Failure) {
        let utf8 = url.utf8
        guard utf8.count > 5, Self.hasPrefixIgnoringCase(utf8, "data:") else { throw .notDataURL }
        guard let comma = utf8.firstIndex(of: UInt8(ascii: ",")) else { throw .notBase64Encoded }
        // Safe to slice the String with UTF-8 indices: both sit next to ASCII bytes (":" and ",").
        let header = url[utf8.index(utf8.startIndex, offsetBy: 5)..<comma]
        let parameters = header.split(separator: ";", omittingEmptySubsequences: false)
        guard parameters.count >= 2, parameters.last?.lowercased() == "base64" else { throw .notBase64Encoded }
        let declared: StaticString
        switch parameters[0].lowercased() {
        case "image/png": declared = "png"
        case "image/jpeg", "image/jpg": declared = "jpeg"
        case "image/gif": declared = "gif"
        case "image/webp": declared = "webp"
        default: throw .unsupportedMediaType
        }
        let payload = url[utf8.index(after: comma)...]
        guard !payload.isEmpty else { throw .empty }
        // Some clients wrap base64 at 76 columns (MIME style); whitespace is the only leniency.
        guard let data = Data(base64Encoded: String(payload)) ?? Data(base64Encoded: String(payload.filter { !$0.isWhitespace }))
        else { throw .invalidBase64 }
        guard !data.isEmpty else { throw .empty }
        self.format = Self.sniffFormat(data) ?? declared
        self.base64 = data.base64EncodedString()
    }

    private static func hasPrefixIgnoringCase(_ utf8: String.UTF8View, _ prefix: StaticString) -> Bool {
        prefix.withUTF8Buffer { prefixBytes in
            zip(utf8, prefixBytes).allSatisfy { byte, expected in byte | 0x20 == expected | 0x20 }
        }
    }

    /// The format named by the file signature, if it is one Bedrock accepts.
    private static func sniffFormat(_ data: Data) -> StaticString? {
        let head = Array(data.prefix(12))
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "png" }
        if head.starts(with: [0xFF, 0xD8, 0xFF]) { return "jpeg" }
        if head.starts(with: [0x47, 0x49, 0x46, 0x38]) { return "gif" }
        if head.count == 12, head.starts(with: [0x52, 0x49, 0x46, 0x46]), head[8..<12].elementsEqual([0x57, 0x45, 0x42, 0x50]) {
            return "webp"
        }
        return nil
    }
}
