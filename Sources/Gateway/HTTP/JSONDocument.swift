import AsyncHTTPClient
import NIOCore
import NIOHTTP1
package import StreamCore

/// Small JSON documents fetched over HTTP: an IdP's discovery document and keys (for the gateway's
/// ``OIDCVerifier``) and the gateway's own `/.well-known/sluice` (for `sluice login`).
package enum JSONDocument {
    package struct Failure: Error, CustomStringConvertible {
        package var description: String
        package init(_ description: String) { self.description = description }
    }

    /// The body of `GET url` when it answers 200 (at most 1 MiB).
    package static func get(_ url: String) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        guard response.status == .ok else { throw Failure("GET \(url): HTTP \(response.status.code)") }
        return Array(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    /// `bytes` as a JSON object.
    package static func object(_ bytes: [UInt8]) throws -> JSONObject {
        let parsed = try bytes.withUnsafeBytes { try JSONParser.parse($0, maximumNestingDepth: 16) }
        guard let object = parsed.objectValue else { throw Failure("not a JSON object") }
        return object
    }

    /// `issuer`'s OpenID Connect discovery document.
    package static func discovery(issuer: String) async throws -> JSONObject {
        var base = issuer
        while base.hasSuffix("/") { base.removeLast() }
        return try Self.object(try await Self.get(base + "/.well-known/openid-configuration"))
    }
}
