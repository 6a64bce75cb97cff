import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// A device registered with the server.
public struct Device: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var createdAt: String
    public var revokedAt: String?
}

extension ServerStore {
    /// Registers a device and returns it with its token. The token is not stored and cannot be shown again.
    public func addDevice(name: String) throws -> (device: Device, token: String) {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= 200 else {
            throw AdminError.invalid("a device name is 1 to 200 characters")
        }
        let token = DeviceToken.generate()
        let device = Device(id: UUID().uuidString.lowercased(), name: trimmed, createdAt: iso8601(clock()), revokedAt: nil)
        try writer.withLock { connection in
            try connection.run(
                "INSERT INTO devices (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
                [.text(device.id), .text(device.name), .text(DeviceToken.hash(token)), .text(device.createdAt)])
        }
        return (device, token)
    }

    public func devices() throws -> [Device] {
        try reader.withLock { connection in
            try connection.query("SELECT id, name, created_at, revoked_at FROM devices ORDER BY created_at").map {
                Device(id: $0[0].string ?? "", name: $0[1].string ?? "", createdAt: $0[2].string ?? "", revokedAt: $0[3].string)
            }
        }
    }

    /// Revokes a device by id or by name: its token is refused from the next request on.
    public func revokeDevice(_ idOrName: String) throws -> Device {
        try writer.withLock { connection in
            let rows = try connection.query(
                "SELECT id FROM devices WHERE (id = ?1 OR name = ?1)", [.text(idOrName)])
            guard rows.count == 1, let id = rows[0][0].string else {
                throw rows.isEmpty ? AdminError.notFound("no device with id or name '\(idOrName)'")
                    : AdminError.invalid("several devices are named '\(idOrName)'; use the id")
            }
            try connection.run("UPDATE devices SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                                     [.text(iso8601(clock())), .text(id)])
        }
        guard let device = try devices().first(where: { $0.id == idOrName || $0.name == idOrName }) else {
            throw AdminError.notFound("no device '\(idOrName)'")
        }
        return device
    }

    /// What a bearer token stands for.
    public enum Authentication: Equatable, Sendable {
        case device(id: String, name: String)
        case revoked
        case unknown
    }

    public func authenticate(token: String) throws -> Authentication {
        let hash = DeviceToken.hash(token)
        return try reader.withLock { connection in
            let stmt = try connection.statement("SELECT id, name, revoked_at FROM devices WHERE token_hash = ?")
            defer { stmt.reset() }
            try stmt.bind(hash, at: 1)
            guard try stmt.step() else { return .unknown }
            if !stmt.isNull(2) { return .revoked }
            return .device(id: stmt.text(0) ?? "", name: stmt.text(1) ?? "")
        }
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
