import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

extension Accounts {
    // MARK: Authentication

    /// What a bearer token stands for.
    public enum Authentication: Equatable, Sendable {
        case device(id: String, name: String, access: Access)
        case revoked
        /// Reported lost: only `POST /v1/wiped` is answered, so the replica can confirm it deleted itself.
        case lost(id: String, name: String)
        case userDisabled
        case unknown
    }

    /// What a bearer token stands for, checked against the hashes in the store on every request.
    public func authenticate(token: String) throws -> Authentication {
        let hash = DeviceToken.hash(token)
        return try store.reader.withConnection { connection in
            let stmt = try connection.literalStatement("""
                SELECT d.id, d.name, d.revoked_at, d.lost_at, d.token_hash, u.id, u.name, u.role, u.profile, u.disabled_at
                FROM devices d LEFT JOIN users u ON u.id = d.user_id WHERE d.token_hash = ?
                """)
            defer { stmt.reset() }
            try stmt.bind(hash, at: 1)
            guard try stmt.step(), DeviceToken.constantTimeEqual(stmt.text(4) ?? "", hash) else { return .unknown }
            if !stmt.isNull(3) { return .lost(id: stmt.text(0) ?? "", name: stmt.text(1) ?? "") }
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
