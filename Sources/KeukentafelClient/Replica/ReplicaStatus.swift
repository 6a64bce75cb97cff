import KeukentafelProtocol

/// What `kt status` shows.
public struct ReplicaStatus: Sendable, Codable {
    public var path: String
    public var node: String
    public var server: String
    public var schemaVersion: Int
    /// The file is encrypted (its key in `<path>.key`).
    public var encrypted: Bool
    public var cursor: Int64
    /// A download reached the end of the feed at least once (false: never, or the first was interrupted).
    public var hasSynced: Bool
    public var pending: Int
    public var rejected: Int
    public var lastSyncAt: Int64?
    public var lastError: String?
    public var conflicts: Int
    /// Conflicts in which a write of this replica lost.
    public var lostWrites: Int
    /// The server's data model version, when newer than this replica's.
    public var serverSchemaVersion: Int?
    public var rejectedChanges: [RejectedChange]
    /// Unresolved conflicts in which a write of this replica lost, newest first.
    public var lostChanges: [ConflictRecord]
    /// Decisions on conflicts taken here that the server refused.
    public var refusedResolutions: [RefusedResolution]

    public struct RejectedChange: Sendable, Codable {
        public var change: String
        public var cell: String
        public var value: String
        public var code: String
        public var message: String
    }
}

extension Replica {
    public func status() throws -> ReplicaStatus {
        let entries = try outbox()
        let conflicts = try self.conflicts()
        let refusedResolutions = try self.refusedResolutions()
        return try locked {
            ReplicaStatus(
                path: path, node: node.description, server: try meta("server_url") ?? "", schemaVersion: dataModel.version,
                encrypted: isEncrypted,
                cursor: Int64(try meta("cursor") ?? "0") ?? 0,
                hasSynced: try meta("download_complete_at") != nil,
                pending: entries.filter { $0.state == "pending" }.count,
                rejected: entries.filter { $0.state == "rejected" }.count,
                lastSyncAt: try meta("last_sync_at").flatMap { Int64($0) }, lastError: try meta("last_error"),
                conflicts: conflicts.count,
                lostWrites: conflicts.filter { $0.loserVersion.node == node }.count,
                serverSchemaVersion: try meta("server_schema_version").flatMap(Int.init),
                rejectedChanges: entries.filter { $0.state == "rejected" }.map {
                    ReplicaStatus.RejectedChange(change: $0.change.id, cell: $0.change.key.description, value: $0.change.value.description,
                                                 code: $0.code ?? "", message: $0.message ?? "")
                },
                lostChanges: conflicts.filter { $0.loserVersion.node == node && $0.resolvedAt == nil && $0.resolution == nil },
                refusedResolutions: refusedResolutions)
        }
    }
}
