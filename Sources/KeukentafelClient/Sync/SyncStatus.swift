import Foundation
import KeukentafelProtocol

/// Where a replica's sync stands, for an app's status line: connected or not, what is being sent and
/// received, and what went wrong last (`SyncEngine.statusUpdates()`).
public struct SyncStatus: Sendable, Equatable {
    public enum Connection: String, Sendable, Codable {
        /// Never connected yet, or the last attempt could not reach the server.
        case offline
        /// A sync is under way and the server has not answered yet.
        case connecting
        /// The server answered the last request (a long-poll waiting for news counts).
        case connected
    }

    public var connection: Connection = .offline
    /// Local changes waiting to be sent; `uploading` while a push is under way.
    public var pendingChanges = 0
    public var uploading = false
    /// While a pull brings pages: the cells received so far in this pull, and an estimate of how many
    /// the whole pull brings (from how far through the feed the pages are; nil until the first page).
    public var downloading = false
    public var cellsDownloaded = 0
    public var cellsExpected: Int?
    /// A download ran to the end of the feed at least once: the replica holds what the device may see.
    public var hasSynced = false
    public var lastSyncedAt: Date?
    /// Why the last attempt failed, with the server's stable code (or `unreachable`); nil after a success.
    public var lastError: SyncFailure?

    public init() {}
}

/// A failed sync as an app can act on it: `code` is stable (`unreachable`, `token_revoked`,
/// `device_lost`, `upgrade_required`, …; see `ErrorCode`), `message` says it in words.
public struct SyncFailure: Sendable, Equatable, Error {
    public var code: String
    public var message: String

    init(_ error: any Error) {
        switch error {
        case SyncError.unreachable(let why): self.init(code: "unreachable", message: why)
        case SyncError.server(_, let code, let message): self.init(code: code, message: message)
        case SyncError.protocolMismatch(let why): self.init(code: "protocol_mismatch", message: why)
        default: self.init(code: "local_error", message: "\(error)")
        }
    }

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// A local change the server refused; it stays on the device (`Replica.status().rejectedChanges`).
public struct RefusedChange: Sendable, Equatable {
    public var table: String
    public var row: String
    public var column: String
    /// The server's stable code, e.g. `out_of_scope`, `invalid_value`, `immutable_cell`.
    public var code: String
    public var message: String
}

/// The current status and everyone listening to it.
final class StatusBroadcaster: @unchecked Sendable {
    private let lock = NSLock()
    private var status: SyncStatus
    private var listeners: [Int: AsyncStream<SyncStatus>.Continuation] = [:]
    private var refusalListeners: [Int: AsyncStream<RefusedChange>.Continuation] = [:]
    private var nextID = 0

    init(_ initial: SyncStatus) { status = initial }

    var current: SyncStatus { lock.withLock { status } }

    /// Changes the status; listeners hear of it only if it differs.
    func update(_ change: (inout SyncStatus) -> Void) {
        let (changed, targets) = lock.withLock { () -> (SyncStatus?, [AsyncStream<SyncStatus>.Continuation]) in
            var next = status
            change(&next)
            guard next != status else { return (nil, []) }
            status = next
            return (next, Array(listeners.values))
        }
        if let changed { for target in targets { target.yield(changed) } }
    }

    func stream() -> AsyncStream<SyncStatus> {
        let (stream, continuation) = AsyncStream<SyncStatus>.makeStream()
        let id = lock.withLock { () -> Int in
            nextID += 1
            listeners[nextID] = continuation
            continuation.yield(status)
            return nextID
        }
        continuation.onTermination = { [weak self] _ in self?.lock.withLock { _ = self?.listeners.removeValue(forKey: id) } }
        return stream
    }

    func refusals() -> AsyncStream<RefusedChange> {
        let (stream, continuation) = AsyncStream<RefusedChange>.makeStream()
        let id = lock.withLock { () -> Int in
            nextID += 1
            refusalListeners[nextID] = continuation
            return nextID
        }
        continuation.onTermination = { [weak self] _ in self?.lock.withLock { _ = self?.refusalListeners.removeValue(forKey: id) } }
        return stream
    }

    func refused(_ changes: [RefusedChange]) {
        let targets = lock.withLock { Array(refusalListeners.values) }
        for target in targets { for change in changes { target.yield(change) } }
    }
}
