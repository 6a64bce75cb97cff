import KeukentafelProtocol

/// Why a sync did not complete. The outbox and the replica are unchanged by a failed step.
public enum SyncError: Error, CustomStringConvertible, Sendable {
    /// The server could not be reached (network, timeout, TLS).
    case unreachable(String)
    /// The server answered with an error; `code` is stable (see `ErrorCode`).
    case server(status: Int, code: String, message: String)
    /// The server answered something this client does not understand.
    case protocolMismatch(String)

    public var description: String {
        switch self {
        case .unreachable(let why): return why
        case .server(let status, let code, let message): return "server refused the request (\(status) \(code)): \(message)"
        case .protocolMismatch(let why): return "unexpected answer from the server: \(why)"
        }
    }
}

/// The outcome of one `sync()`.
public struct SyncReport: Sendable, Codable, Equatable {
    public init() {}
    public var pushed = PushCounts()
    public var pulled = ApplyCounts()
    public var pages = 0
    public var cursor: Int64 = 0
    /// Changes refused for a clock that was ahead, re-stamped after the clock was fixed.
    public var restamped = 0
    /// Local changes still refused by the server (see `kt status`).
    public var stillRejected = 0
    /// Conflict decisions sent to the server.
    public var resolutionsSent = 0
    /// Of those, the ones the server refused (kept on the device; see `kt status`).
    public var resolutionsRefused = 0
    /// Set when the server runs a newer data model than the replica: time for `kt upgrade`.
    public var serverSchemaVersion: Int?
    /// Attachment content sent to the server (decision 0026), and its bytes.
    public var attachmentsUploaded = 0
    public var attachmentBytesUploaded: Int64 = 0
    /// Changes refused for content the server lacked (`attachment_missing`), queued again after its upload.
    public var attachmentChangesRequeued = 0
    /// Content of `eager` columns fetched, and its bytes.
    public var attachmentsDownloaded = 0
    public var attachmentBytesDownloaded: Int64 = 0
    /// Content of `eager` columns the server did not serve (the row left this device's scopes meanwhile).
    public var attachmentsNotAvailable = 0
    /// Content deleted from the device because no row refers to it any more (evicted, purged, replaced).
    public var attachmentsRemoved = 0
    /// Recorded views the server stored (`Replica.recordView`).
    public var viewsSent = 0
    /// Of those, entries the server flagged: edited after they were recorded, or after a gap.
    public var viewsFlagged = 0
}
