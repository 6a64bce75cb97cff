import Foundation
import KeukentafelProtocol

/// What the HTTP layer needs from a store: the seam between `SyncServer` and the database.
///
/// `ServerStore` (embedded SQLite) is the implementation today; a PostgreSQL store (issue 6) implements
/// the same protocol, and `SyncServer` does not change. Every method blocks; the server calls them on
/// NIO's thread pool. The rules a store must keep are the protocol's (docs/protocol.md), above all:
/// a pull never advances a cursor past a change that commits later with a smaller sequence number
/// (`ConcurrencyTests`).
public protocol SyncStore: Sendable {
    /// The data model the store enforces and serves.
    var dataModel: DataModel { get }
    /// The store's clock in milliseconds (server time in answers, clock-skew checks).
    var clock: @Sendable () -> Int64 { get }

    /// The device and access a bearer token stands for.
    func authenticate(token: String) throws -> ServerStore.Authentication
    /// Applies a batch in one transaction, answering per change.
    func push(_ changes: [Change], device: String, access: Access, clientSchemaVersion: Int?,
              rejectedWhileDecoding: [Int: ChangeRejection], resolutions: [Resolution]) throws -> PushResponse
    /// One page of the feed for a device.
    func pull(since cursor: Int64, limit: Int, access: Access, device: String?, epoch: String?) throws -> PullResponse
    /// Whether `access` may see a row now.
    func canSee(table: String, row: String, access: Access) throws -> Bool
    /// Every accepted write of a row (or one cell).
    func history(table: String, row: String, column: String?) throws -> [HistoryEntry]
    /// Whether the store answers (for `/readyz`).
    func isReady() -> Bool
    /// The bytes the store occupies (for `/metrics`).
    func sizeInBytes() -> Int
}

extension ServerStore: SyncStore {
    public func sizeInBytes() -> Int {
        let base = (directory as NSString).appendingPathComponent(Self.fileName)
        return Int(fileSize(base) + fileSize(base + "-wal"))
    }
}
