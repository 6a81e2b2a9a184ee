import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The console page (`GET /admin`) and its script and style sheet, compiled into the binary
/// (SwiftPM `embedInCode`: no files to ship or lose beside it).
///
/// Served with a strict Content-Security-Policy (only this origin's script, style and API; no
/// inline code, no frames), and revalidated by ETag (`no-cache`): a new release's page is never
/// mixed with an old cached script, and an unchanged one costs a 304.
struct ConsoleAssets: Sendable {
    struct Asset: Sendable {
        var body: ByteBuffer
        var contentType: String
        var etag: String

        init(_ bytes: [UInt8], contentType: String) {
            self.body = ByteBuffer(bytes: bytes)
            self.contentType = contentType
            // A strong validator from the content itself, the same on every replica.
            self.etag = "\"" + SHA256.hash(data: bytes).prefix(12).map { String($0, radix: 16).leftPadded(2) }.joined() + "\""
        }
    }

    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    let page = Asset(PackageResources.index_html, contentType: "text/html; charset=utf-8")
    let script = Asset(PackageResources.console_js, contentType: "text/javascript; charset=utf-8")
    let style = Asset(PackageResources.console_css, contentType: "text/css; charset=utf-8")

    func register(on router: Router<GatewayRequestContext>) {
        router.get("/admin") { request, _ in self.serve(self.page, request) }
        router.get("/admin/console.js") { request, _ in self.serve(self.script, request) }
        router.get("/admin/console.css") { request, _ in self.serve(self.style, request) }
    }

    private func serve(_ asset: Asset, _ request: Request) -> Response {
        var headers: HTTPFields = [
            .contentType: asset.contentType,
            .cacheControl: "no-cache",
            .eTag: asset.etag,
            .contentSecurityPolicy: Self.contentSecurityPolicy,
            .xContentTypeOptions: "nosniff",
            .referrerPolicy: "no-referrer",
            .crossOriginOpenerPolicy: "same-origin",
            .crossOriginResourcePolicy: "same-origin",
        ]
        headers[.xFrameOptions] = "DENY"
        if let tags = request.headers[.ifNoneMatch], tags.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == asset.etag }) {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        self.count >= width ? self : String(repeating: "0", count: width - self.count) + self
    }
}

extension HTTPField.Name {
    fileprivate static let referrerPolicy = Self("Referrer-Policy")!
    fileprivate static let xFrameOptions = Self("X-Frame-Options")!
    fileprivate static let crossOriginOpenerPolicy = Self("Cross-Origin-Opener-Policy")!
}
