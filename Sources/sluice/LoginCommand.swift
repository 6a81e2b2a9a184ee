import ArgumentParser
import AsyncHTTPClient
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore

#if canImport(Glibc)
import Glibc
#endif

/// `sluice login --gateway URL`: signs a developer in with the company's IdP by the OAuth 2.0 device
/// authorization grant (RFC 8628) and keeps the refresh token, so that `sluice token print` can hand
/// Claude Code (`apiKeyHelper`) or Codex a fresh IdP token whenever they ask.
struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Sign in with the gateway's identity provider (device flow) and keep the credentials.",
        discussion: """
            The gateway's GET /.well-known/sluice names the issuer and the public client; the issuer's \
            discovery document names its device and token endpoints. The credentials (refresh token \
            included) are written to ~/.config/sluice/credentials, readable by you only. Then:
              sluice token print    # a valid access token, refreshed when needed
            """
    )

    @Option(help: "The gateway's base URL, e.g. https://sluice.corp.example.")
    var gateway: String

    @Option(help: "The IdP client id to sign in with (default: the one the gateway publishes).")
    var clientId: String?

    func run() async throws {
        let gateway = self.gateway.hasSuffix("/") ? String(self.gateway.dropLast()) : self.gateway
        let published = try await OAuth.reading(gateway) { try JSONDocument.object(try await JSONDocument.get(gateway + "/.well-known/sluice")) }
        guard let oidc = published.present("oidc")?.objectValue, let issuer = oidc.present("issuer")?.stringValue else {
            throw LoginError("the gateway at \(gateway) does not accept IdP sign-in (its /.well-known/sluice names no oidc issuer)")
        }
        guard let clientID = self.clientId ?? oidc.present("clientId")?.stringValue else {
            throw LoginError("the gateway publishes no client id for sign-in: pass --client-id")
        }
        let scopes = oidc.present("scopes")?.arrayValue?.compactMap(\.stringValue) ?? ["openid", "offline_access"]
        let discovery = try await OAuth.reading(issuer) { try await JSONDocument.discovery(issuer: issuer) }
        guard let deviceEndpoint = discovery.present("device_authorization_endpoint")?.stringValue,
            let tokenEndpoint = discovery.present("token_endpoint")?.stringValue
        else {
            throw LoginError("the issuer \(issuer) does not offer the device authorization grant")
        }
        let device = try await OAuth.post(deviceEndpoint, form: ["client_id": clientID, "scope": scopes.joined(separator: " ")])
        guard let deviceCode = device.present("device_code")?.stringValue, let userCode = device.present("user_code")?.stringValue,
            let verification = device.present("verification_uri_complete")?.stringValue ?? device.present("verification_uri")?.stringValue
        else {
            throw LoginError("the issuer's device endpoint answered without device_code, user_code or verification_uri")
        }
        var interval = max(1, device.present("interval")?.intValue ?? 5)
        let expires = Date().addingTimeInterval(TimeInterval(device.present("expires_in")?.intValue ?? 600))
        FileHandle.standardError.write(Data("To sign in, open \(verification)\nand enter the code \(userCode)\nWaiting…\n".utf8))
        while Date() < expires {
            try await Task.sleep(for: .seconds(interval))
            let answer = try await OAuth.post(
                tokenEndpoint,
                form: ["grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": deviceCode, "client_id": clientID],
                acceptErrors: true
            )
            switch answer.present("error")?.stringValue {
            case nil:
                var credentials = Credentials(gateway: gateway, issuer: issuer, clientID: clientID, tokenEndpoint: tokenEndpoint)
                try credentials.update(from: answer)
                try credentials.save()
                FileHandle.standardError.write(Data("Signed in. `sluice token print` prints a current token.\n".utf8))
                return
            case "authorization_pending": continue
            case "slow_down": interval += 5
            case let error?:
                let detail = answer.present("error_description")?.stringValue.map { ": \($0)" } ?? ""
                throw LoginError("sign-in failed (\(error)\(detail))")
            }
        }
        throw LoginError("sign-in timed out: the code was not confirmed in time; run `sluice login` again")
    }
}

extension TokenCommand {
    /// `sluice token print`: the signed-in developer's IdP token, refreshed when it is near expiry.
    struct Print: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "print",
            abstract: "Print a valid IdP token for the gateway (after `sluice login`), refreshing it when needed.",
            discussion: """
                For Claude Code: {"apiKeyHelper": "sluice token print"} in ~/.claude/settings.json, with \
                ANTHROPIC_BASE_URL set to the gateway. Nothing but the token is written to standard output.
                """
        )

        func run() async throws {
            guard var credentials = try Credentials.load() else {
                throw LoginError("not signed in: run `sluice login --gateway <url>` first")
            }
            if let token = credentials.current(at: Date()) {
                print(token)
                return
            }
            guard let refresh = credentials.refreshToken else {
                throw LoginError("the token has expired and the IdP gave no refresh token: run `sluice login` again")
            }
            let answer = try await OAuth.post(
                credentials.tokenEndpoint, form: ["grant_type": "refresh_token", "refresh_token": refresh, "client_id": credentials.clientID],
                acceptErrors: true
            )
            if let error = answer.present("error")?.stringValue {
                throw LoginError("the IdP refused to refresh the token (\(error)): run `sluice login` again")
            }
            try credentials.update(from: answer)
            try credentials.save()
            // Fresh from the IdP: good however short its lifetime (a minute's margin is for reuse).
            guard let token = credentials.current(at: Date(), margin: 0) else {
                throw LoginError("the IdP's refreshed token is already expired: check this machine's clock")
            }
            print(token)
        }
    }
}

/// What `sluice login` keeps: the IdP's tokens and where to refresh them. A file readable by its
/// owner only, in a directory readable by its owner only.
struct Credentials: Codable {
    var gateway: String
    var issuer: String
    var clientID: String
    var tokenEndpoint: String
    var accessToken: String?
    var idToken: String?
    var refreshToken: String?
    /// When the access token expires (seconds since 1970).
    var expiresAt: Double?

    init(gateway: String, issuer: String, clientID: String, tokenEndpoint: String) {
        self.gateway = gateway
        self.issuer = issuer
        self.clientID = clientID
        self.tokenEndpoint = tokenEndpoint
    }

    static var path: URL {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: environment["HOME"] ?? NSHomeDirectory()).appendingPathComponent(".config")
        return base.appendingPathComponent("sluice").appendingPathComponent("credentials")
    }

    /// A token response's fields (a refresh may omit the refresh token: the old one stays).
    mutating func update(from answer: JSONObject) throws {
        guard let access = answer.present("access_token")?.stringValue else {
            throw LoginError("the IdP's token response has no access_token")
        }
        self.accessToken = access
        self.idToken = answer.present("id_token")?.stringValue ?? self.idToken
        self.refreshToken = answer.present("refresh_token")?.stringValue ?? self.refreshToken
        self.expiresAt = answer.present("expires_in")?.doubleValue.map { Date().timeIntervalSince1970 + $0 }
    }

    /// The token to send, while it has more than `margin` seconds left: the access token when it is
    /// a JWT (Okta, Entra ID, Keycloak), else the ID token (Google's access tokens are opaque).
    func current(at now: Date, margin: Double = 60) -> String? {
        guard let expiresAt, expiresAt - now.timeIntervalSince1970 > margin else { return nil }
        if let access = self.accessToken, OIDCVerifier.looksLikeJWT(access) { return access }
        return self.idToken ?? self.accessToken
    }

    static func load() throws -> Credentials? {
        guard let data = FileManager.default.contents(atPath: Self.path.path) else { return nil }
        return try JSONDecoder().decode(Credentials.self, from: data)
    }

    func save() throws {
        let directory = Self.path.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        // Written to a new 0600 file, then renamed over the old one: the secret is never readable by others.
        let temporary = directory.appendingPathComponent("credentials.\(getpid()).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw LoginError("cannot write \(temporary.path)")
        }
        guard rename(temporary.path, Self.path.path) == 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw LoginError("cannot write \(Self.path.path) (errno \(errno))")
        }
    }
}

/// The few OAuth requests the CLI makes: JSON GETs and form POSTs, answers parsed as JSON objects.
enum OAuth {
    /// `read`, its failure (unreachable, not 200, not JSON) said as the CLI says it.
    static func reading(_ url: String, _ read: () async throws -> JSONObject) async throws -> JSONObject {
        do {
            return try await read()
        } catch {
            throw LoginError("\(url): \(error)")
        }
    }

    static func post(_ url: String, form: [String: String], acceptErrors: Bool = false) async throws -> JSONObject {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        let body = form.sorted { $0.key < $1.key }.map { "\(Self.encode($0.key))=\(Self.encode($0.value))" }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: body))
        return try await Self.send(request, acceptErrors: acceptErrors)
    }

    /// - Parameter acceptErrors: OAuth error answers (400 with `{"error": …}`) are returned, not thrown.
    static func send(_ request: HTTPClientRequest, acceptErrors: Bool) async throws -> JSONObject {
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        } catch {
            throw LoginError("\(request.url): \(error)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        let object = body.withUnsafeReadableBytes { try? JSONParser.parse($0, maximumNestingDepth: 16) }?.objectValue
        if let object, response.status == .ok || (acceptErrors && object.present("error") != nil) { return object }
        throw LoginError("\(request.url): HTTP \(response.status.code)")
    }

    /// `application/x-www-form-urlencoded` value encoding: unreserved characters stay.
    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// A failure of `sluice login` or `sluice token print`: the message only (not the usage text).
struct LoginError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
