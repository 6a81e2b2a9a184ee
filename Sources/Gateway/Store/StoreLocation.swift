import Foundation
package import Logging

/// Where the store is: `--db`, else `SLUICE_DB`, else the config file's `store.path` / `store.url`,
/// else a per-user data directory (`$XDG_DATA_HOME/sluice/sluice.db`, or `~/.local/share/sluice/sluice.db`).
package enum StoreLocation {
    package static func resolve(flag: String?, environment: [String: String], configuredPath: String?) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let path = environment["SLUICE_DB"], !path.isEmpty { return path }
        if let configuredPath, !configuredPath.isEmpty { return configuredPath }
        if let data = environment["XDG_DATA_HOME"], data.hasPrefix("/") { return "\(data)/sluice/sluice.db" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "."
        return "\(home)/.local/share/sluice/sluice.db"
    }
}

/// A store location, parsed: a SQLite file, or a PostgreSQL server shared by several replicas.
package enum StoreAddress: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresAddress)

    /// Parses what ``StoreLocation/resolve(flag:environment:configuredPath:)`` chose. Anything with a
    /// scheme other than `postgres://` or `postgresql://` is refused: a URL must never be taken for a
    /// file name (a typo'd scheme would silently create a local file and split the replicas).
    package static func parse(_ location: String, environment: [String: String]) throws(StoreAddressError) -> StoreAddress {
        guard let schemeEnd = location.range(of: "://") else { return .sqlite(path: location) }
        let scheme = location[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw StoreAddressError("the store '\(scheme)://…' is neither a file path nor a postgres:// URL")
        }
        return .postgres(try PostgresAddress(url: location, environment: environment))
    }

    /// For logs: never the password.
    package var redacted: String {
        switch self {
        case .sqlite(let path): path
        case .postgres(let address): address.redacted
        }
    }
}

package struct StoreAddressError: Error, CustomStringConvertible, Equatable {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// `postgres://user[:password]@host[:port]/database[?sslmode=…]`; the password may instead come from
/// `SLUICE_DB_PASSWORD` or the file named by `SLUICE_DB_PASSWORD_FILE` (so it need not sit in a
/// config file or a process listing).
package struct PostgresAddress: Sendable, Equatable {
    package enum TLSMode: String, Sendable {
        /// libpq's names: `disable`, `prefer` (TLS if offered, unverified), `require` (TLS,
        /// unverified), `verify-full` (TLS, certificate and host name verified).
        case disable, prefer, require, verifyFull = "verify-full"
    }

    package var host: String
    package var port: Int
    package var user: String
    package var password: String?
    package var database: String
    package var tls: TLSMode

    package init(host: String, port: Int = 5432, user: String, password: String?, database: String, tls: TLSMode = .prefer) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
    }

    init(url: String, environment: [String: String]) throws(StoreAddressError) {
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            throw StoreAddressError("the store URL is not a valid postgres:// URL (postgres://user:password@host:5432/database)")
        }
        guard let user = components.user, !user.isEmpty else {
            throw StoreAddressError("the postgres:// store URL names no user (postgres://user@host/database)")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw StoreAddressError("the postgres:// store URL names no database (postgres://user@host/database)")
        }
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = TLSMode(rawValue: value) else {
                    throw StoreAddressError("sslmode must be disable, prefer, require or verify-full")
                }
                tls = mode
            default:
                throw StoreAddressError("the postgres:// store URL has an unknown parameter '\(item.name)' (only sslmode is read)")
            }
        }
        var password = components.password.flatMap { $0.isEmpty ? nil : $0 }
        if password == nil, let fromEnvironment = environment["SLUICE_DB_PASSWORD"], !fromEnvironment.isEmpty {
            password = fromEnvironment
        }
        if password == nil, let file = environment["SLUICE_DB_PASSWORD_FILE"], !file.isEmpty {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw StoreAddressError("SLUICE_DB_PASSWORD_FILE names a file that cannot be read: \(file)")
            }
            password = text.trimmingCharacters(in: .newlines)
        }
        self.init(
            host: host, port: components.port ?? 5432, user: components.user ?? user, password: password, database: database, tls: tls
        )
        // URLComponents leaves percent-escapes in user and password; a password may hold any byte.
        self.user = components.percentEncodedUser?.removingPercentEncoding ?? user
        if let encoded = components.percentEncodedPassword, !encoded.isEmpty { self.password = encoded.removingPercentEncoding ?? encoded }
    }

    package var redacted: String {
        "postgres://\(self.user)\(self.password == nil ? "" : ":***")@\(self.host):\(self.port)/\(self.database)"
    }
}

extension StoreAddress {
    /// Opens (and migrates) the store at this address.
    package func open(logger: Logger) async throws -> any Store {
        switch self {
        case .sqlite(let path): try await SQLiteStore.open(path: path, logger: logger)
        case .postgres(let address): try await PostgresStore.open(address, logger: logger)
        }
    }
}
