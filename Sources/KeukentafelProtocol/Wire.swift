/// The wire types of the sync protocol, `/v1`. `Schemas/openapi.yaml` documents the same shapes; a
/// test keeps the two in agreement.

/// One cell change pushed by a replica.
public struct Change: Codable, Sendable, Hashable {
    /// Unique per write: `<node id>-<counter>`. Pushing a change with a known id again has no effect.
    public var id: String
    public var table: String
    public var row: String
    public var column: String
    public var value: CellValue
    public var version: CellVersion
    /// The version of the cell the writer saw when it wrote; absent when it saw none. For a deletion
    /// (`column == "_deleted"`), the newest version of the row the writer saw.
    public var base: CellVersion?

    public init(id: String, table: String, row: String, column: String, value: CellValue, version: CellVersion, base: CellVersion?) {
        self.id = id
        self.table = table
        self.row = row
        self.column = column
        self.value = value
        self.version = version
        self.base = base
    }

    public var key: CellKey { CellKey(table: table, row: row, column: column) }
}

/// A person's decision on a conflict record, sent with a push. The data change that goes with it (the
/// restored or new value) is an ordinary change in the same or an earlier push.
public struct Resolution: Codable, Sendable, Equatable {
    public var conflict: Int64
    /// `kept winner`, `restored loser` or `new value`, and optionally why.
    public var resolution: String

    public init(conflict: Int64, resolution: String) {
        self.conflict = conflict
        self.resolution = resolution
    }
}

public struct PushRequest: Codable, Sendable {
    public var node: NodeID
    public var schemaVersion: Int
    public var changes: [Change]
    public var resolutions: [Resolution]?
    /// Changes (by index) already found unusable while decoding, e.g. text that is not valid UTF-8.
    /// They are answered as rejected; the rest of the batch still applies. Not on the wire.
    public var rejectedWhileDecoding: [Int: ChangeRejection] = [:]

    enum CodingKeys: String, CodingKey { case node, schemaVersion, changes, resolutions }

    public init(node: NodeID, schemaVersion: Int, changes: [Change], resolutions: [Resolution]? = nil) {
        self.node = node
        self.schemaVersion = schemaVersion
        self.changes = changes
        self.resolutions = resolutions
    }
}

/// What the server did with one pushed change.
public enum ChangeStatus: String, Codable, Sendable, CaseIterable {
    /// It is now the cell's value.
    case applied
    /// A newer, non-concurrent value was already there; nothing was lost.
    case superseded
    /// It was concurrent with another write; a conflict record holds both values.
    /// `won` in the result says whether it became the cell's value.
    case conflict
    /// It was refused and stored nowhere; `code` and `message` say why. It stays in the device's outbox.
    case rejected
}

public struct ChangeResult: Codable, Sendable, Equatable {
    public var id: String
    public var status: ChangeStatus
    public var won: Bool?
    public var conflict: Int64?
    public var code: ErrorCode?
    public var message: String?

    public init(id: String, status: ChangeStatus, won: Bool? = nil, conflict: Int64? = nil, code: ErrorCode? = nil, message: String? = nil) {
        self.id = id
        self.status = status
        self.won = won
        self.conflict = conflict
        self.code = code
        self.message = message
    }
}

public struct PushResponse: Codable, Sendable {
    /// The server's wall clock in milliseconds, so a replica can check its own.
    public var serverTime: Int64
    public var results: [ChangeResult]
    /// Ids of the conflicts whose resolutions were recorded.
    public var resolved: [Int64]?
    /// Decisions the server did not record, with why (the device may not see or change that conflict).
    public var refusedResolutions: [RefusedResolution]?

    public init(serverTime: Int64, results: [ChangeResult], resolved: [Int64]? = nil, refusedResolutions: [RefusedResolution]? = nil) {
        self.serverTime = serverTime
        self.results = results
        self.resolved = resolved
        self.refusedResolutions = refusedResolutions
    }
}

/// A decision on a conflict that the server refused; the device keeps it, marked refused.
public struct RefusedResolution: Codable, Sendable, Equatable {
    public var conflict: Int64
    public var code: ErrorCode
    public var message: String

    public init(conflict: Int64, code: ErrorCode, message: String) {
        self.conflict = conflict
        self.code = code
        self.message = message
    }
}

/// One cell of the change feed.
public struct FeedCell: Codable, Sendable, Hashable {
    public var column: String
    public var value: CellValue
    public var version: CellVersion

    public init(column: String, value: CellValue, version: CellVersion) {
        self.column = column
        self.value = value
        self.version = version
    }
}

/// The cells of one row that changed in the pulled range, grouped so the row id travels once.
public struct FeedRow: Codable, Sendable, Hashable {
    public var table: String
    public var row: String
    public var cells: [FeedCell]

    public init(table: String, row: String, cells: [FeedCell]) {
        self.table = table
        self.row = row
        self.cells = cells
    }
}

/// A conflict between two concurrent writes of one cell. The losing value is never dropped: it is
/// here, and writing it again restores it.
public struct ConflictRecord: Codable, Sendable, Hashable {
    public var id: Int64
    public var table: String
    public var row: String
    public var column: String
    public var winnerValue: CellValue
    public var winnerVersion: CellVersion
    public var winnerDevice: String?
    public var loserValue: CellValue
    public var loserVersion: CellVersion
    public var loserDevice: String?
    /// The version both writers started from, as far as the losing writer reported it.
    public var base: CellVersion?
    /// Which rule decided: `lww` (greater version wins), `delete-wins` or `edit-wins`.
    public var rule: String
    /// Whether the schema asks a person to review conflicts on this column.
    public var review: Bool
    /// Server time the conflict was recorded, ISO-8601.
    public var recordedAt: String
    public var resolvedAt: String?
    public var resolvedBy: String?
    public var resolution: String?
    /// Names of the devices, for people (the ids above are for machines).
    public var winnerDeviceName: String?
    public var loserDeviceName: String?
    /// The users the two devices belong to.
    public var winnerUser: String?
    public var loserUser: String?

    public init(id: Int64, table: String, row: String, column: String, winnerValue: CellValue, winnerVersion: CellVersion,
                winnerDevice: String?, loserValue: CellValue, loserVersion: CellVersion, loserDevice: String?,
                base: CellVersion?, rule: String, review: Bool, recordedAt: String,
                resolvedAt: String? = nil, resolvedBy: String? = nil, resolution: String? = nil,
                winnerDeviceName: String? = nil, loserDeviceName: String? = nil, winnerUser: String? = nil, loserUser: String? = nil) {
        self.id = id
        self.table = table
        self.row = row
        self.column = column
        self.winnerValue = winnerValue
        self.winnerVersion = winnerVersion
        self.winnerDevice = winnerDevice
        self.loserValue = loserValue
        self.loserVersion = loserVersion
        self.loserDevice = loserDevice
        self.base = base
        self.rule = rule
        self.review = review
        self.recordedAt = recordedAt
        self.resolvedAt = resolvedAt
        self.resolvedBy = resolvedBy
        self.resolution = resolution
        self.winnerDeviceName = winnerDeviceName
        self.loserDeviceName = loserDeviceName
        self.winnerUser = winnerUser
        self.loserUser = loserUser
    }
}

public struct PullResponse: Codable, Sendable {
    /// Pass this as `since` on the next pull. Store it in the same transaction as the page.
    public var cursor: Int64
    /// Whether more pages follow right away.
    public var more: Bool
    public var rows: [FeedRow]
    public var conflicts: [ConflictRecord]
    /// Rows that left this device's scopes (a case moved to another team): delete them locally.
    public var evictions: [RowReference]
    /// Rows that were erased (AVG): delete them locally, with any pending change to them.
    public var purges: [RowReference]
    /// The server cannot continue this device's feed from `since` (its scopes changed, or the store
    /// was restored to an earlier state): pull again from 0 and drop what the new feed does not hold.
    public var resync: Bool
    /// The feed's epoch: it changes when the store is restored from a backup. Send it back as `epoch`
    /// on the next pull; a device whose epoch is not the server's is told to resync, and then sends its
    /// own writes the restored store lacks again.
    public var epoch: String?
    /// The server's signature of `cursor`: send it back as `proof` with that cursor. A cursor beyond
    /// the store's newest sequence number means the store went back only if its proof is valid;
    /// otherwise it is refused (`cursor_ahead`).
    public var cursorProof: String?
    /// While `more` is true: where this pass through the feed started. Send it back as `floor` with
    /// the next pull, until a page says `more: false`; then the next pull's floor is its own `since`.
    /// The server keeps one record per row ordered by its newest cell (decision 0020): a row read on a
    /// later page of a pass may hold cells older than that page's `since`, and the floor is what tells
    /// the server to send them too.
    public var floor: Int64?
    /// The feed's newest sequence number when the page was read. With `cursor` and the floor it tells a
    /// device how far through the feed it is (a download's progress); it moves on as others write.
    public var head: Int64?
    public var serverTime: Int64
    public var schemaVersion: Int

    public init(cursor: Int64, more: Bool, rows: [FeedRow], conflicts: [ConflictRecord], evictions: [RowReference] = [],
                purges: [RowReference] = [], resync: Bool = false, epoch: String? = nil, cursorProof: String? = nil,
                floor: Int64? = nil, head: Int64? = nil, serverTime: Int64, schemaVersion: Int) {
        self.cursorProof = cursorProof
        self.floor = floor
        self.head = head
        self.cursor = cursor
        self.more = more
        self.rows = rows
        self.conflicts = conflicts
        self.evictions = evictions
        self.purges = purges
        self.resync = resync
        self.epoch = epoch
        self.serverTime = serverTime
        self.schemaVersion = schemaVersion
    }
}

/// A row named by table and id.
public struct RowReference: Codable, Sendable, Hashable {
    public var table: String
    public var row: String

    public init(table: String, row: String) {
        self.table = table
        self.row = row
    }
}

/// `GET /v1/hello`: who the server thinks you are, its clock and its data model.
public struct HelloResponse: Codable, Sendable {
    public var protocolVersion: Int
    public var serverTime: Int64
    public var device: String
    /// The user the device belongs to, their role and scopes (`team:castricum-noord`, or `*` for all).
    public var user: String?
    public var role: String?
    public var scopes: [String]?
    public var schema: DataModel

    public init(protocolVersion: Int, serverTime: Int64, device: String, user: String? = nil, role: String? = nil,
                scopes: [String]? = nil, schema: DataModel) {
        self.protocolVersion = protocolVersion
        self.serverTime = serverTime
        self.device = device
        self.user = user
        self.role = role
        self.scopes = scopes
        self.schema = schema
    }
}

/// The body of every error response: `{"error": {"code": "...", "message": "..."}}`.
public struct ErrorResponse: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var code: ErrorCode
        public var message: String
    }
    public var error: Detail

    public init(code: ErrorCode, message: String) {
        self.error = Detail(code: code, message: message)
    }
}

/// One accepted write of a cell: the history of a record is a list of these, oldest first.
public struct HistoryEntry: Codable, Sendable, Equatable {
    public var changeID: String
    public var column: String
    public var value: CellValue
    public var version: CellVersion
    public var device: String?
    public var deviceName: String?
    /// Server time the change arrived, ISO-8601.
    public var receivedAt: String
    /// What the push answered: applied, superseded or conflict.
    public var status: String
    public var won: Bool?

    public init(changeID: String, column: String, value: CellValue, version: CellVersion, device: String?, deviceName: String?,
                receivedAt: String, status: String, won: Bool?) {
        self.changeID = changeID
        self.column = column
        self.value = value
        self.version = version
        self.device = device
        self.deviceName = deviceName
        self.receivedAt = receivedAt
        self.status = status
        self.won = won
    }
}

/// `GET /v1/history?table=&row=[&column=]`.
public struct HistoryResponse: Codable, Sendable {
    public var entries: [HistoryEntry]
    public init(entries: [HistoryEntry]) { self.entries = entries }
}
