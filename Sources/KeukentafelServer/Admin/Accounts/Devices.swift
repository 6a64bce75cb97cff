import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// A device registered with the server; it belongs to one user.
public struct Device: Codable, Sendable, Equatable {
    /// The device's id.
    public var id: String
    /// A name people recognise (`laptop Fatima`).
    public var name: String
    /// The name of the user it belongs to.
    public var user: String
    /// When it was registered.
    public var createdAt: String
    /// When its token was revoked, if it was.
    public var revokedAt: String?
    /// Reported lost: the replica deletes itself on its next contact.
    public var lostAt: String?
    /// When the lost device confirmed that it wiped its replica (decision 0028).
    public var wipedAt: String? = nil
    /// The replica node the device is bound to (by its first push), in hex; nil before it pushed.
    public var node: String?
}

extension Accounts {
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
                // `no`: the number its deliveries name it by (decision 0032).
                try connection.run("""
                    INSERT INTO devices (id, name, token_hash, created_at, user_id, informed_seq, no)
                    VALUES (?, ?, ?, ?, ?, ?, (SELECT coalesce(max(no), 0) + 1 FROM devices))
                    """,
                    [.text(device.id), .text(device.name), .text(DeviceToken.hash(token)), .text(device.createdAt), .text(owner.id),
                     .integer(head)])
                try store.audit.append(connection, actor: actor, action: "device.add", subject: device.name, detail: "user \(owner.name), id \(device.id)")
            }
        }
        return (device, token)
    }

    /// Every registered device, oldest first.
    public func devices() throws -> [Device] {
        try store.reader.withConnection { connection in
            try connection.query("""
                SELECT d.id, d.name, coalesce(u.name, ''), d.created_at, d.revoked_at, d.lost_at, d.node, d.wiped_at
                FROM devices d LEFT JOIN users u ON u.id = d.user_id ORDER BY d.created_at
                """).map {
                Device(id: $0[0].string ?? "", name: $0[1].string ?? "", user: $0[2].string ?? "", createdAt: $0[3].string ?? "",
                       revokedAt: $0[4].string, lostAt: $0[5].string,
                       wipedAt: $0[7].string,
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
}
