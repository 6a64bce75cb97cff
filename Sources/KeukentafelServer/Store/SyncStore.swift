import Foundation
import KeukentafelProtocol

/// What the HTTP layer needs from a store: the seam between `SyncServer` and the database.
///
/// `ServerStore` implements it, on embedded SQLite or PostgreSQL (decision 0013). Every method blocks; the server calls them on
/// NIO's thread pool. The rules a store must keep are the protocol's (docs/protocol.md), above all:
/// a pull never advances a cursor past a change that commits later with a smaller sequence number
/// (`ConcurrencyTests`).
public protocol SyncStore: Sendable {
    /// The data model the store enforces and serves.
    var dataModel: DataModel { get }
    /// The store's clock in milliseconds (server time in answers, clock-skew checks).
    var clock: @Sendable () -> Int64 { get }

    /// The device and access a bearer token stands for.
    func authenticate(token: String) throws -> Accounts.Authentication
    /// Applies a batch in one transaction, answering per change. `node` is the pushing replica's,
    /// which the device is bound to (a `StoreRefusal` with `node_mismatch` if it is not its own).
    /// With the answer comes what the push touched (`ChangeFootprint`), so that only the long-polls of
    /// devices that may see it wake.
    func pushOutcome(_ changes: [Change], device: String, node: NodeID?, access: Access, clientSchemaVersion: Int?,
                     rejectedWhileDecoding: [Int: ChangeRejection], resolutions: [Resolution]) throws -> PushOutcome
    /// One page of the feed for a device. A cursor beyond the store's head needs the proof the store
    /// handed out with it (a `StoreRefusal` with `cursor_ahead` otherwise). `floor`: where the device's
    /// pass through the feed started (`PullResponse.floor`); without it, rows come whole.
    ///
    /// What the page sends the device is returned to be noted with `record` before the page is sent: the
    /// server notes the pages of many devices in one transaction (a push may wake thousands at once).
    func pullPage(since cursor: Int64, floor: Int64?, limit: Int, access: Access, device: String?, epoch: String?, proof: String?,
                  skipOwn: Bool) throws -> (page: PullResponse, delivery: Delivery?)
    /// Notes what pulls sent to devices (who received which rows, how far each was sent the feed), in one transaction.
    func record(_ deliveries: [Delivery]) throws
    /// Whether `access` may see a row now.
    func canSee(table: String, row: String, access: Access) throws -> Bool
    /// Every accepted write of a row (or one cell).
    func history(table: String, row: String, column: String?) throws -> [HistoryEntry]
    /// Whether the store answers (for `/readyz`).
    func isReady() -> Bool
    /// The bytes the store occupies (for `/metrics`).
    func sizeInBytes() -> Int
    /// Whether other processes may push to the store too (then `watchOtherWriters` tells of their pushes).
    var hasOtherWriters: Bool { get }
    /// Calls `onChange` after every push another process commits, until cancelled; long-polls wake on it.
    func watchOtherWriters(_ onChange: @escaping @Sendable (ChangeFootprint) -> Void) async throws

    /// Where a device's upload of an attachment stands (`Attachments.uploadStatus`).
    func attachmentUploadStatus(sha256: String, size: Int64, device: String, access: Access) throws -> AttachmentUpload
    /// Takes one chunk of a device's upload (`Attachments.receive`).
    func receiveAttachmentChunk(sha256: String, size: Int64, offset: Int64, bytes: [UInt8], chunkDigest: String, device: String,
                                access: Access) throws -> AttachmentUpload
    /// The reference and size through which `access` may download content, or `nil`.
    func downloadableAttachment(sha256: String, access: Access) throws -> (reference: AttachmentReference, size: Int64)?
    /// Up to `limit` bytes of stored content from `offset`.
    func readAttachment(sha256: String, from offset: Int64, limit: Int) throws -> [UInt8]
    /// Checks and stores a device's recorded views (`ViewLogStore.receive`).
    func receiveViews(_ entries: [ViewLog.Entry], device: String) throws -> ViewReceipt
    /// A lost device's receipt of its wipe (`DeletionReceipts.confirmWipe`).
    func confirmWipe(device: String, receipt: WipeReceipt) throws
}

/// The store's side of the protocol: each requirement is done by the part that owns it.
extension ServerStore: SyncStore {
    /// The device a token stands for (`Accounts`).
    public func authenticate(token: String) throws -> Accounts.Authentication {
        try accounts.authenticate(token: token)
    }

    /// Applies a pushed batch (`PushPath`); `node` is the pushing replica's (decision 0017).
    public func push(_ changes: [Change], device: String, node: NodeID? = nil, access: Access = .system, clientSchemaVersion: Int? = nil,
                     rejectedWhileDecoding: [Int: ChangeRejection] = [:], resolutions: [Resolution] = []) throws -> PushResponse {
        try pushOutcome(changes, device: device, node: node, access: access, clientSchemaVersion: clientSchemaVersion,
                        rejectedWhileDecoding: rejectedWhileDecoding, resolutions: resolutions).response
    }

    /// `push`, and what it touched.
    public func pushOutcome(_ changes: [Change], device: String, node: NodeID? = nil, access: Access = .system, clientSchemaVersion: Int? = nil,
                            rejectedWhileDecoding: [Int: ChangeRejection] = [:], resolutions: [Resolution] = []) throws -> PushOutcome {
        try PushPath(store: self).push(changes, device: device, node: node, access: access, clientSchemaVersion: clientSchemaVersion,
                                       rejectedWhileDecoding: rejectedWhileDecoding, resolutions: resolutions)
    }

    /// One page of the feed for a device (`FeedReader`).
    public func pull(since cursor: Int64, floor: Int64? = nil, limit: Int, access: Access = .system, device: String? = nil,
                     epoch: String? = nil, proof: String? = nil, skipOwn: Bool = false) throws -> PullResponse {
        try FeedReader(store: self).pull(since: cursor, floor: floor, limit: limit, access: access, device: device, epoch: epoch, proof: proof,
                                         skipOwn: skipOwn)
    }

    /// `pull`, leaving the delivery for `record` (`FeedReader`).
    public func pullPage(since cursor: Int64, floor: Int64?, limit: Int, access: Access, device: String?, epoch: String?, proof: String?,
                         skipOwn: Bool) throws -> (page: PullResponse, delivery: Delivery?) {
        try FeedReader(store: self).pullPage(since: cursor, floor: floor, limit: limit, access: access, device: device, epoch: epoch,
                                             proof: proof, skipOwn: skipOwn)
    }

    /// Notes what pulls sent, many devices in one transaction (`FeedReader`).
    public func record(_ deliveries: [Delivery]) throws {
        try FeedReader(store: self).record(deliveries)
    }

    /// Whether `access` may see the row now (`FeedReader`).
    public func canSee(table: String, row: String, access: Access) throws -> Bool {
        try FeedReader(store: self).canSee(table: table, row: row, access: access)
    }

    /// Every accepted write of a row or cell (`Inspection`).
    public func history(table: String, row: String, column: String? = nil) throws -> [HistoryEntry] {
        try inspection.history(table: table, row: row, column: column)
    }

    /// Whether the store answers a query (for `/readyz`).
    public func isReady() -> Bool {
        (try? reader.withConnection { try $0.scalar("SELECT value FROM meta WHERE key = 'seq'") }) != nil
    }

    /// A PostgreSQL store may be shared with other `ktd` processes.
    public var hasOtherWriters: Bool { postgresLocation != nil }

    /// Wakes long-polls when another `ktd` on the same PostgreSQL commits a push.
    public func watchOtherWriters(_ onChange: @escaping @Sendable (ChangeFootprint) -> Void) async throws {
        guard let location = postgresLocation else { return }
        try await PostgresStoreConnection.watchPushes(location, onChange)
    }

    /// Where a device's upload stands (`Attachments`).
    public func attachmentUploadStatus(sha256: String, size: Int64, device: String, access: Access) throws -> AttachmentUpload {
        try attachments.uploadStatus(sha256: sha256, size: size, device: device, access: access)
    }

    /// One chunk of an upload (`Attachments`).
    public func receiveAttachmentChunk(sha256: String, size: Int64, offset: Int64, bytes: [UInt8], chunkDigest: String, device: String,
                                       access: Access) throws -> AttachmentUpload {
        try attachments.receive(sha256: sha256, size: size, offset: offset, bytes: bytes, chunkDigest: chunkDigest, device: device, access: access)
    }

    /// What `access` may download (`Attachments`).
    public func downloadableAttachment(sha256: String, access: Access) throws -> (reference: AttachmentReference, size: Int64)? {
        try attachments.downloadable(sha256: sha256, access: access)
    }

    /// Stored content (`Attachments`).
    public func readAttachment(sha256: String, from offset: Int64, limit: Int) throws -> [UInt8] {
        try attachments.read(sha256: sha256, from: offset, limit: limit)
    }

    /// Recorded views (`ViewLogStore`).
    public func receiveViews(_ entries: [ViewLog.Entry], device: String) throws -> ViewReceipt {
        try views.receive(entries, device: device)
    }

    /// A wipe's receipt (`DeletionReceipts`).
    public func confirmWipe(device: String, receipt: WipeReceipt) throws {
        try deletionReceipts.confirmWipe(device: device, receipt: receipt)
    }

    /// The bytes the store occupies on disk (database file and log, or the PostgreSQL database).
    public func sizeInBytes() -> Int {
        switch dialect {
        case .sqlite:
            let base = (directory as NSString).appendingPathComponent(Self.fileName)
            return Int(fileSize(base) + fileSize(base + "-wal"))
        case .postgresql:
            let size = try? reader.withConnection { try $0.scalar("SELECT pg_database_size(current_database())")?.int64 }
            return Int((size ?? nil) ?? 0)
        }
    }
}
