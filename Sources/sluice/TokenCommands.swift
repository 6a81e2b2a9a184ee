import ArgumentParser
import Foundation
import Gateway
import Logging

/// `sluice token create|list|revoke`: client tokens in the store.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke client tokens; print the signed-in IdP token.",
        subcommands: [Create.self, List.self, Revoke.self, Print.self]
    )

    /// Where the database is: the same rules as `sluice serve`.
    struct StoreOptions: ParsableArguments {
        @Option(help: "SQLite file or postgres:// URL (default SLUICE_DB, the config file's store.path or store.url, else ~/.local/share/sluice/sluice.db).")
        var db: String?

        @Option(help: "JSON configuration file (for store.path).")
        var config: String?

        func open() async throws -> any Store {
            let environment = ProcessInfo.processInfo.environment
            var configuredPath: String?
            if self.db == nil, environment["SLUICE_DB"] == nil, self.config != nil || environment["SLUICE_CONFIG"] != nil {
                do {
                    configuredPath = try GatewayConfiguration.load(file: self.config, environment: environment).storePath
                } catch let error as ConfigurationError {
                    throw configurationFailure(error.description)
                }
            }
            let path = StoreLocation.resolve(flag: self.db, environment: environment, configuredPath: configuredPath)
            var logger = Logger(label: "sluice")
            logger.logLevel = .error
            let address: StoreAddress
            do {
                address = try StoreAddress.parse(path, environment: environment)
            } catch {
                throw configurationFailure(error.description)
            }
            return try await address.open(logger: logger)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token; it is printed once, as the last line of standard output.",
            discussion: """
                Only the token's SHA-256 is stored. Example:
                  TOKEN=$(sluice token create --identity jane --ttl 30d | tail -n 1)
                """
        )

        @Option(help: "Who the token stands for (a person or an agent).")
        var identity: String

        @Option(help: "A group the identity belongs to (repeatable).")
        var group: [String] = []

        @Option(help: "Lifetime: e.g. 30d, 12h, 2w, 90m.")
        var ttl: String = "30d"

        @Option(help: "A free-text note shown in listings.")
        var label: String?

        @Flag(help: "Print the token's details as one JSON line before the token.")
        var json = false

        @OptionGroup var store: StoreOptions

        func validate() throws {
            if let problem = ClientToken.identityProblem(self.identity) { throw ValidationError("--identity: \(problem)") }
            for group in self.group {
                if let problem = ClientToken.groupProblem(group) { throw ValidationError("--group '\(group)': \(problem)") }
            }
            guard ClientToken.parseDuration(self.ttl) != nil else {
                throw ValidationError("--ttl must be a positive number followed by s, m, h, d or w (e.g. 30d), got '\(self.ttl)'")
            }
        }

        func run() async throws {
            let store = try await self.store.open()
            let made: (token: String, record: TokenRecord)
            do {
                made = try await ClientToken.issue(
                    in: store, identity: self.identity, groups: self.group, label: self.label, ttl: ClientToken.parseDuration(self.ttl), now: Date()
                )
            } catch {
                try? await store.close()
                throw error
            }
            try? await store.close()
            let record = made.record
            let expires = record.expiresAt.map { ISO8601DateFormatter().string(from: $0) } ?? "never"
            if self.json {
                var object: [String: Any] = [
                    "prefix": record.prefix, "identity": record.identity, "groups": record.groups, "expires_at": expires,
                    "created_at": ISO8601DateFormatter().string(from: record.createdAt),
                ]
                if let label = record.label { object["label"] = label }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("token \(record.prefix) for \(record.identity) (groups: \(record.groups.isEmpty ? "none" : record.groups.joined(separator: ", "))), expires \(expires)")
                print("It is shown only now; store it safely. Clients send it as 'Authorization: Bearer <token>' (Claude Code: AWS_BEARER_TOKEN_BEDROCK).")
            }
            print(made.token)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens: prefix, identity, groups, expiry, last use, state.")

        @OptionGroup var store: StoreOptions

        func run() async throws {
            let store = try await self.store.open()
            let tokens: [TokenRecord]
            do {
                tokens = try await store.tokens()
            } catch {
                try? await store.close()
                throw error
            }
            try? await store.close()
            let now = Date()
            let formatter = ISO8601DateFormatter()
            let rows = tokens.map { token in
                [
                    token.prefix, token.identity, token.groups.joined(separator: ","), token.expiresAt.map { formatter.string(from: $0) } ?? "never",
                    token.lastUsedAt.map { formatter.string(from: $0) } ?? "never", token.state(at: now).rawValue, token.label ?? "",
                ]
            }
            print(TextTable.render(header: ["PREFIX", "IDENTITY", "GROUPS", "EXPIRES", "LAST USED", "STATE", "LABEL"], rows: rows))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a token by its prefix, or every token of an identity.",
            discussion: "A running server refuses a revoked token within two seconds."
        )

        @Argument(help: "A token prefix (as `sluice token list` shows it) or an identity.")
        var selector: String

        @OptionGroup var store: StoreOptions

        func run() async throws {
            let store = try await self.store.open()
            let revoked: [String]
            do {
                revoked = try await store.revokeTokens(matching: self.selector, at: Date())
            } catch {
                try? await store.close()
                throw error
            }
            try? await store.close()
            guard !revoked.isEmpty else {
                FileHandle.standardError.write(Data("no live token has prefix or identity '\(self.selector)'\n".utf8))
                throw ExitCode.failure
            }
            print("revoked \(revoked.joined(separator: ", "))")
        }
    }
}
