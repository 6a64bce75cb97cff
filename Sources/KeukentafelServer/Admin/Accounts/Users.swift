import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// A person who uses Keukentafel, with a role and scopes.
public struct User: Codable, Sendable, Equatable {
    /// The user's id.
    public var id: String
    /// The user's name (unique).
    public var name: String
    /// What the user does with the data.
    public var role: Role
    /// For partners: their profile in the data model.
    public var profile: String?
    /// The scope keys the user holds.
    public var scopes: [String]
    /// When the user was added.
    public var createdAt: String
    /// When the user was disabled, if they were.
    public var disabledAt: String?
}

extension Accounts {
    // MARK: Users

    /// Adds a user. Partners need a `profile` from the data model; other roles may not have one.
    public func addUser(name: String, role: Role, profile: String? = nil, actor: String) throws -> User {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= 200 else { throw AdminError.invalid("a user name is 1 to 200 characters") }
        if role == .partner {
            guard let profile else {
                let known = (store.dataModel.partnerProfiles ?? []).map(\.name).joined(separator: ", ")
                throw AdminError.invalid("a partner needs --profile, one of: \(known.isEmpty ? "(the data model defines none)" : known)")
            }
            guard store.dataModel.partnerProfile(named: profile) != nil else {
                throw AdminError.invalid("the data model has no partner profile '\(profile)'")
            }
        } else if profile != nil {
            throw AdminError.invalid("only partners have a profile")
        }
        let id = UUID().uuidString.lowercased()
        try store.writer.withLock { connection in
            try connection.transaction {
                if try connection.scalar("SELECT 1 FROM users WHERE name = ?", [.text(trimmed)]) != nil {
                    throw AdminError.invalid("a user named '\(trimmed)' already exists")
                }
                try connection.run("INSERT INTO users (id, name, role, profile, created_at) VALUES (?, ?, ?, ?, ?)",
                                   [.text(id), .text(trimmed), .text(role.rawValue), profile.map(CellValue.text) ?? .null,
                                    .text(iso8601(store.clock()))])
                try store.audit.append(connection, actor: actor, action: "user.add", subject: trimmed,
                          detail: "role \(role.rawValue)" + (profile.map { ", profile \($0)" } ?? ""))
            }
        }
        return try user(trimmed)
    }

    /// Every user, by name, with their scopes.
    public func users() throws -> [User] {
        try store.reader.withConnection { connection in
            let scopes = try connection.query("SELECT user_id, scope FROM user_scopes ORDER BY scope")
            var byUser: [String: [String]] = [:]
            for row in scopes { byUser[row[0].string ?? "", default: []].append(row[1].string ?? "") }
            return try connection.query("SELECT id, name, role, profile, created_at, disabled_at FROM users ORDER BY name").map {
                let id = $0[0].string ?? ""
                return User(id: id, name: $0[1].string ?? "", role: Role(rawValue: $0[2].string ?? "") ?? .auditor,
                            profile: $0[3].string, scopes: byUser[id] ?? [], createdAt: $0[4].string ?? "", disabledAt: $0[5].string)
            }
        }
    }

    /// A user by name or id.
    public func user(_ nameOrID: String) throws -> User {
        guard let user = try users().first(where: { $0.name == nameOrID || $0.id == nameOrID }) else {
            throw AdminError.notFound("no user named '\(nameOrID)' (see `ktd admin user list`)")
        }
        return user
    }

    /// Disables a user: every device of theirs is refused from the next request on.
    public func disableUser(_ nameOrID: String, actor: String) throws -> User {
        let target = try user(nameOrID)
        try store.writer.withLock { connection in
            try connection.transaction {
                try connection.run("UPDATE users SET disabled_at = coalesce(disabled_at, ?) WHERE id = ?",
                                   [.text(iso8601(store.clock())), .text(target.id)])
                try store.audit.append(connection, actor: actor, action: "user.disable", subject: target.name, detail: nil)
            }
        }
        return try user(target.id)
    }

    // MARK: Scopes

    /// Checks that a scope key names a scope the data model can give a row: `COLUMN:VALUE` where
    /// COLUMN is some table's `own` scope column, or `*`.
    public func checkScopeKey(_ scope: String) throws {
        if scope == Access.everyScope { return }
        let kinds = Set(store.dataModel.tables.compactMap { $0.scope?.own })
        let parts = scope.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, kinds.contains(parts[0]), !parts[1].isEmpty,
              !parts[1].unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) else {
            let examples = kinds.sorted().map { "\($0):<code>" }.joined(separator: ", ")
            throw AdminError.invalid("'\(scope)' is not a scope; a scope is one of \(examples), or * for every scope")
        }
    }

    /// The scopes of kind `scope`'s kind (`team`, `municipality`) that some row is in, sorted; and
    /// whether `scope` itself is one of them. A scope no row is in is usually a typo (`team:castricum-nord`),
    /// which would give its user an empty feed without a word; `ktd admin scope add` asks for `--new`.
    public func scopesInUse(like scope: String) throws -> (inUse: Bool, ofItsKind: [String]) {
        guard scope != Access.everyScope, let kind = scope.split(separator: ":", maxSplits: 1).first else { return (true, []) }
        return try store.reader.withConnection { connection in
            let inUse = try connection.scalar("SELECT 1 FROM row_scopes WHERE scope = ? LIMIT 1", [.text(scope)]) != nil
            let ofItsKind = try connection.query("SELECT DISTINCT scope FROM row_scopes WHERE scope LIKE ? ORDER BY scope",
                                                 [.text(kind + ":%")]).compactMap { $0[0].string }
            return (inUse, ofItsKind)
        }
    }

    /// Gives a user a scope. Their devices start over from an empty feed on their next pull, so they
    /// receive the rows they gained (decision 0010).
    public func addScope(_ scope: String, to nameOrID: String, actor: String) throws -> User {
        try checkScopeKey(scope)
        let target = try user(nameOrID)
        try store.writer.withLock { connection in
            try connection.transaction {
                try connection.run("INSERT INTO user_scopes (user_id, scope, granted_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                   [.text(target.id), .text(scope), .text(iso8601(store.clock()))])
                try connection.run("UPDATE devices SET resync = 1 WHERE user_id = ?", [.text(target.id)])
                try store.audit.append(connection, actor: actor, action: "scope.add", subject: target.name, detail: scope)
            }
        }
        return try user(target.id)
    }

    /// Takes a scope from a user. Their devices start over and drop the rows they no longer see;
    /// changes they wrote while they still held the scope are still accepted (decision 0010).
    public func removeScope(_ scope: String, from nameOrID: String, actor: String) throws -> User {
        let target = try user(nameOrID)
        guard target.scopes.contains(scope) else { throw AdminError.notFound("\(target.name) does not have scope '\(scope)'") }
        try store.writer.withLock { connection in
            try connection.transaction {
                try connection.run("DELETE FROM user_scopes WHERE user_id = ? AND scope = ?", [.text(target.id), .text(scope)])
                // The removal takes the feed's next sequence number: a device sent the feed that far was told
                // to start over, so it knows of the removal (decision 0017).
                let sequence = (try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 ?? 0) + 1
                try connection.run("UPDATE meta SET value = ? WHERE key = 'seq'", [.integer(sequence)])
                try connection.run("INSERT INTO user_scope_removals (user_id, scope, removed_ms, removed_seq) VALUES (?, ?, ?, ?)",
                                   [.text(target.id), .text(scope), .integer(store.clock()), .integer(sequence)])
                try connection.run("UPDATE devices SET resync = 1 WHERE user_id = ?", [.text(target.id)])
                try store.audit.append(connection, actor: actor, action: "scope.remove", subject: target.name, detail: scope)
            }
        }
        return try user(target.id)
    }
}
