import Foundation
import Gateway
import HTTPTypes
import Logging

/// The token check on the request path, shared by GatewayBenchmarks and Tools/GatewayProfile: a real
/// temporary SQLite store with one token made as `sluice token create` makes it, and an authenticator
/// that has seen it once, so a known token is answered from memory (no database round trip) and an
/// unknown one asks the store every time.
public final class TokenFixture: Sendable {
    let directory: URL
    let store: SQLiteStore
    let authenticator: TokenAuthenticator
    let knownHeaders: HTTPFields
    let unknownHeaders: HTTPFields

    private init(directory: URL, store: SQLiteStore, authenticator: TokenAuthenticator, known: String, unknown: String) {
        self.directory = directory
        self.store = store
        self.authenticator = authenticator
        self.knownHeaders = [.authorization: "Bearer \(known)", .contentType: "application/json"]
        self.unknownHeaders = [.authorization: "Bearer \(unknown)", .contentType: "application/json"]
    }

    public static func open() async throws -> TokenFixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-bench-\(UUID().uuidString)")
        var logger = Logger(label: "sluice-bench")
        logger.logLevel = .error
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("sluice.db").path, logger: logger)
        // As `sluice token create --identity bench@corp --group engineering --ttl 30d` does.
        let made = ClientToken.make(
            identity: "bench@corp", groups: ["engineering"], label: "benchmark", ttl: ClientToken.parseDuration("30d"), now: Date()
        )
        try await store.insertToken(made.record)
        let unknown = ClientToken.make(identity: "nobody", groups: [], label: nil, ttl: nil, now: Date()).token
        let fixture = TokenFixture(
            directory: directory, store: store, authenticator: TokenAuthenticator(store: store), known: made.token, unknown: unknown
        )
        // The first request for a token created after the cache was loaded reads it from the store;
        // every later one is served from memory, which is what the known-token check measures.
        try await fixture.checkKnown()
        return fixture
    }

    /// One check of the known token; throws if it is not accepted.
    public func checkKnown() async throws {
        guard case .success = await self.authenticator.authenticate(self.knownHeaders) else {
            throw TokenFixtureFailure(description: "the known token was refused")
        }
    }

    /// One check of a well-formed token the store does not know; throws if it is accepted.
    public func checkUnknown() async throws {
        guard case .failure = await self.authenticator.authenticate(self.unknownHeaders) else {
            throw TokenFixtureFailure(description: "an unknown token was accepted")
        }
    }

    public func close() async throws {
        try await self.store.close()
        try? FileManager.default.removeItem(at: self.directory)
    }
}

private struct TokenFixtureFailure: Error, CustomStringConvertible {
    var description: String
}
