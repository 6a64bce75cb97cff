import Foundation
import KeukentafelProtocol

/// What `Replica.reconnect` did.
public struct ReconnectReport: Sendable, Codable, Equatable {
    /// Who the replica syncs as from now on.
    public var identity: DeviceIdentity
    public var serverURL: String
    /// True when the token belongs to another device than before: the next sync downloads the
    /// feed again (what the new device may see), and drops rows it may not.
    public var downloadsAgain: Bool
    /// Local changes not yet sent, kept and sent by the next sync.
    public var changesKept: Int
    /// Set when the server runs a newer data model than the replica: run `kt upgrade`.
    public var serverSchemaVersion: Int?
}

extension Replica {
    /// Makes a new replica connected to a server: asks the server who `token` belongs to and for its
    /// data model, then creates the file with its tables (mode 0600: it holds the token). Fails,
    /// leaving nothing behind, when the server is unreachable or refuses the token
    /// (`SyncError`), or when `path` exists (`ReplicaError.alreadyExists`).
    ///
    /// ```swift
    /// let replica = try Replica.connect(path: "laptop.sqlite", serverURL: "https://kt.gemeente.nl", token: token)
    /// try SyncEngine(replica: replica).sync()   // the first download
    /// ```
    public static func connect(path: String, serverURL: String, token: String, caBundlePath: String? = nil,
                               transport: (any SyncTransport)? = nil, encryption: ReplicaEncryption = .none,
                               clock: @escaping @Sendable () -> Int64 = Replica.systemClock) throws -> Replica {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ReplicaError.alreadyExists("'\(path)' already exists; a replica is created once (give it a new token with reconnect / `kt login`)")
        }
        let hello = try fetchHello(transport ?? CurlTransport(baseURL: serverURL, token: token, caBundlePath: caBundlePath))
        let replica = try create(path: path, dataModel: hello.schema, serverURL: serverURL, token: token, caBundlePath: caBundlePath,
                                 encryption: encryption, clock: clock)
        try replica.locked { try replica.setIdentity(DeviceIdentity(hello)) }
        return replica
    }

    /// Who this replica syncs as, as the server said at `connect` or `reconnect` (nil for a replica
    /// made by `create`, or by a release before these existed).
    public var identity: DeviceIdentity? {
        get throws {
            try locked { try meta("identity") }.flatMap { try? JSONDecoder().decode(DeviceIdentity.self, from: Data($0.utf8)) }
        }
    }

    /// Gives this replica a new token, a new server address, or both, and keeps everything on it:
    /// the unsent changes in the outbox, the conflicts, the data. For a device whose token was
    /// revoked or replaced, a server that moved, a laptop handed to a colleague.
    ///
    /// The new token is checked with the server first; a refusal (`SyncError`) changes nothing.
    /// When it belongs to another device than before, the next sync downloads the feed again as
    /// that device and drops the rows it may not see (its own unsent rows stay). A server with an
    /// older data model than the replica's is not this replica's server (`ReplicaError.wrongServer`).
    ///
    /// Make a new `SyncEngine` afterwards: an engine keeps the token it was made with. The server
    /// lets the new device take over this replica once the old device is revoked (or reported lost).
    @discardableResult
    public func reconnect(serverURL: String? = nil, token: String, caBundlePath: String? = nil,
                          transport: (any SyncTransport)? = nil) throws -> ReconnectReport {
        let url = try serverURL ?? self.serverURL
        let caBundle = try caBundlePath ?? self.caBundlePath
        let hello = try fetchHello(transport ?? CurlTransport(baseURL: url, token: token, caBundlePath: caBundle))
        if hello.schema.version < dataModel.version {
            throw ReplicaError.wrongServer("the server at \(url) has data model v\(hello.schema.version), older than this replica's "
                                           + "v\(dataModel.version): it is not the server this replica came from. Nothing was changed.")
        }
        return try locked {
            try connection.transaction {
                let previous = try meta("identity").flatMap { try? JSONDecoder().decode(DeviceIdentity.self, from: Data($0.utf8)) }
                let identity = DeviceIdentity(hello)
                // A replica of an older release does not know its device: start over to be safe.
                let downloadsAgain = previous?.device != identity.device
                try setMeta("server_url", url)
                try setMeta("token", token)
                try setMeta("ca_bundle", caBundle.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
                try setIdentity(identity)
                try setMeta("last_error", nil)
                if downloadsAgain { try beginResync(.scopes) }
                if hello.schema.version > dataModel.version { try setMeta("server_schema_version", String(hello.schema.version)) }
                var kept = 0
                if case .integer(let count)? = try connection.scalar("SELECT count(*) FROM _kt_outbox WHERE state = 'pending'") {
                    kept = Int(count)
                }
                return ReconnectReport(identity: identity, serverURL: url, downloadsAgain: downloadsAgain, changesKept: kept,
                                       serverSchemaVersion: hello.schema.version > dataModel.version ? hello.schema.version : nil)
            }
        }
    }

    func setIdentity(_ identity: DeviceIdentity) throws {
        try setMeta("identity", String(decoding: try JSONEncoder().encode(identity), as: UTF8.self))
    }
}
