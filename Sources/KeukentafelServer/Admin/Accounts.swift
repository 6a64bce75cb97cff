import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// A person who uses Keukentafel, with a role and scopes.
public struct User: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var role: Role
    public var profile: String?
    public var scopes: [String]
    public var createdAt: String
    public var disabledAt: String?
}

/// A device registered with the server; it belongs to one user.
public struct Device: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var user: String
    public var createdAt: String
    public var revokedAt: String?
    /// Reported lost: the replica deletes itself on its next contact.
    public var lostAt: String?
    /// The replica node the device is bound to (by its first push), in hex; nil before it pushed.
    public var node: String?
}

/// Users (people, with a role and scopes), the scopes they hold, and their devices with their tokens:
/// who may connect, and as whom (docs/access.md).
public struct Accounts: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

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

    public func users() throws -> [User] {
        try store.reader.withLock { connection in
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

    // MARK: Devices

    /// Registers a device for a user and returns it with its token. The token is not stored and
    /// cannot be shown again.
    public func addDevice(name: String, user nameOrID: String, actor: String = "system") throws -> (device: Device, token: String) {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= 200 else {
            throw AdminError.invalid("a device name is 1 to 200 characters")
        }
        let owner = try user(nameOrID)
        let token = DeviceToken.generate()
        let device = Device(id: UUID().uuidString.lowercased(), name: trimmed, user: owner.name, createdAt: iso8601(store.clock()))
        try store.writer.withLock { connection in
            try connection.transaction {
                // A new device wrote nothing before now: it starts as if sent the feed up to the head (decision 0017).
                let head = try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 ?? 0
                try connection.run(
                    "INSERT INTO devices (id, name, token_hash, created_at, user_id, informed_seq) VALUES (?, ?, ?, ?, ?, ?)",
                    [.text(device.id), .text(device.name), .text(DeviceToken.hash(token)), .text(device.createdAt), .text(owner.id),
                     .integer(head)])
                try store.audit.append(connection, actor: actor, action: "device.add", subject: device.name, detail: "user \(owner.name), id \(device.id)")
            }
        }
        return (device, token)
    }

    public func devices() throws -> [Device] {
        try store.reader.withLock { connection in
            try connection.query("""
                SELECT d.id, d.name, coalesce(u.name, ''), d.created_at, d.revoked_at, d.lost_at, d.node
                FROM devices d LEFT JOIN users u ON u.id = d.user_id ORDER BY d.created_at
                """).map {
                Device(id: $0[0].string ?? "", name: $0[1].string ?? "", user: $0[2].string ?? "", createdAt: $0[3].string ?? "",
                       revokedAt: $0[4].string, lostAt: $0[5].string,
                       node: $0[6].int64.flatMap { NodeID(rawValue: UInt64($0)) }.map(\.description))
            }
        }
    }

    /// Revokes a device by id or by name: its token is refused from the next request on.
    public func revokeDevice(_ idOrName: String, actor: String = "system") throws -> Device {
        try markDevice(idOrName, column: "revoked_at", action: "device.revoke", actor: actor)
    }

    /// Reports a device lost: its next request is refused with `device_lost`, and the replica deletes
    /// itself. Its token stops working at once, as with revoke.
    public func markDeviceLost(_ idOrName: String, actor: String) throws -> Device {
        try markDevice(idOrName, column: "lost_at", action: "device.lost", actor: actor)
    }

    /// Unbinds a device from its replica node (decision 0017), so that a new replica made with the same
    /// token (`kt init` after the first replica was lost for good) may push. The old replica, should it
    /// come back, is refused as a second replica of the device from then on.
    public func releaseDevice(_ idOrName: String, actor: String) throws -> Device {
        let device = try findDevice(idOrName)
        guard let node = device.node else { throw AdminError.invalid("device '\(device.name)' is not bound to a replica yet; nothing to release") }
        try store.writer.withLock { connection in
            try connection.transaction {
                try connection.run("UPDATE devices SET node = NULL, node_high_water = 0 WHERE id = ?", [.text(device.id)])
                try store.audit.append(connection, actor: actor, action: "device.release", subject: device.name, detail: "id \(device.id), replica \(node)")
            }
        }
        return try findDevice(device.id)
    }

    /// A device by id or by name (which must be unique).
    func findDevice(_ idOrName: String) throws -> Device {
        let matches = try devices().filter { $0.id == idOrName || $0.name == idOrName }
        guard matches.count == 1 else {
            throw matches.isEmpty ? AdminError.notFound("no device with id or name '\(idOrName)' (see `ktd admin device list`)")
                : AdminError.invalid("several devices are named '\(idOrName)'; use the id")
        }
        return matches[0]
    }

    private func markDevice(_ idOrName: String, column: String, action: String, actor: String) throws -> Device {
        let id = try store.writer.withLock { connection in
            try connection.transaction { () -> String in
                let rows = try connection.query("SELECT id, name FROM devices WHERE (id = ?1 OR name = ?1)", [.text(idOrName)])
                guard rows.count == 1, let id = rows[0][0].string else {
                    throw rows.isEmpty ? AdminError.notFound("no device with id or name '\(idOrName)'")
                        : AdminError.invalid("several devices are named '\(idOrName)'; use the id")
                }
                try connection.run("UPDATE devices SET \(column) = coalesce(\(column), ?) WHERE id = ?",
                                   [.text(iso8601(store.clock())), .text(id)])
                try store.audit.append(connection, actor: actor, action: action, subject: rows[0][1].string ?? id, detail: "id \(id)")
                return id
            }
        }
        guard let device = try devices().first(where: { $0.id == id }) else { throw AdminError.notFound("no device '\(idOrName)'") }
        return device
    }

    // MARK: Authentication

    /// What a bearer token stands for.
    public enum Authentication: Equatable, Sendable {
        case device(id: String, name: String, access: Access)
        case revoked
        case lost
        case userDisabled
        case unknown
    }

    public func authenticate(token: String) throws -> Authentication {
        let hash = DeviceToken.hash(token)
        return try store.reader.withLock { connection in
            let stmt = try connection.literalStatement("""
                SELECT d.id, d.name, d.revoked_at, d.lost_at, d.token_hash, u.id, u.name, u.role, u.profile, u.disabled_at
                FROM devices d LEFT JOIN users u ON u.id = d.user_id WHERE d.token_hash = ?
                """)
            defer { stmt.reset() }
            try stmt.bind(hash, at: 1)
            guard try stmt.step(), DeviceToken.constantTimeEqual(stmt.text(4) ?? "", hash) else { return .unknown }
            if !stmt.isNull(3) { return .lost }
            if !stmt.isNull(2) { return .revoked }
            guard let userID = stmt.text(5), stmt.isNull(9), let role = Role(rawValue: stmt.text(7) ?? "") else { return .userDisabled }
            let access = Access(userID: userID, userName: stmt.text(6) ?? "", role: role,
                                scopes: try scopes(of: userID, connection), profile: stmt.text(8))
            return .device(id: stmt.text(0) ?? "", name: stmt.text(1) ?? "", access: access)
        }
    }

    func scopes(of userID: String, _ connection: any StoreConnection) throws -> Set<String> {
        let stmt = try connection.literalStatement("SELECT scope FROM user_scopes WHERE user_id = ?")
        defer { stmt.reset() }
        try stmt.bind(userID, at: 1)
        var scopes = Set<String>()
        while try stmt.step() { if let scope = stmt.text(0) { scopes.insert(scope) } }
        return scopes
    }
}

public enum AdminError: Error, CustomStringConvertible {
    case invalid(String)
    case notFound(String)

    public var description: String {
        switch self {
        case .invalid(let why): return why
        case .notFound(let what): return what
        }
    }
}
