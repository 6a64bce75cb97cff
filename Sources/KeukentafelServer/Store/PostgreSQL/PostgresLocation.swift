import Foundation

/// Where a PostgreSQL store lives: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require]`.
///
/// The password may also come from the environment (`PGPASSWORD`), so it need not stand in a
/// config file or a process list.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    /// The server's host name or address.
    public var host: String
    /// The server's port (5432 by default).
    public var port: Int
    /// The role to connect as.
    public var user: String
    /// Its password, if the server asks for one.
    public var password: String?
    /// The database that holds the store.
    public var database: String
    /// `sslmode=require`: the connection is encrypted (the server's certificate is verified).
    public var requireTLS: Bool

    /// A location from its parts.
    public init(host: String, port: Int = 5432, user: String, password: String? = nil, database: String, requireTLS: Bool = false) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.requireTLS = requireTLS
    }

    /// Parses a `postgres://` (or `postgresql://`) URL; the error says what is wrong with it.
    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let url = URLComponents(string: text), let scheme = url.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw PostgresLocationError("'\(Self.redacted(text))' is not a postgres:// URL (postgres://USER@HOST:PORT/DATABASE)")
        }
        guard let host = url.host, !host.isEmpty else { throw PostgresLocationError("the PostgreSQL URL names no host") }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        guard !database.isEmpty else { throw PostgresLocationError("the PostgreSQL URL names no database (…/DATABASE)") }
        let user = url.user ?? environment["PGUSER"] ?? "postgres"
        var requireTLS = false
        for item in url.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("sslmode", "require"?), ("sslmode", "verify-full"?): requireTLS = true
            case ("sslmode", "disable"?): requireTLS = false
            default: throw PostgresLocationError("unsupported option '\(item.name)=\(item.value ?? "")' (supported: sslmode=disable|require)")
            }
        }
        self.init(host: host, port: url.port ?? 5432, user: user, password: url.password ?? environment["PGPASSWORD"],
                  database: database, requireTLS: requireTLS)
    }

    /// The URL without its password, for logs and messages.
    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)\(requireTLS ? "?sslmode=require" : "")" }

    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? url
    }
}

/// A PostgreSQL URL that cannot be used.
public struct PostgresLocationError: Error, CustomStringConvertible {
    /// What is wrong with the URL.
    public var description: String
    init(_ description: String) { self.description = description }
}
