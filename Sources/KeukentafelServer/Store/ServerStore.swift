import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// The server's store: the current state of every row (one record per row), the history of every accepted change,
/// conflict records, users and devices, on embedded SQLite (one file in WAL mode) or PostgreSQL.
///
/// `ServerStore` opens and migrates the database and hands out its two connections: writes go
/// through one under a lock (one writer at a time, as SQLite has anyway); reads for pulls use the
/// other, so a pull never waits for a push (snapshots). What the store does is done by its parts,
/// each a small type over these connections:
///
/// | part | what |
/// |---|---|
/// | `push(_:…)`, `pull(since:…)` (`SyncStore`) | the sync protocol: `PushPath`, `FeedReader` |
/// | `accounts` | users, scopes, devices and their tokens |
/// | `conflicts` | conflict records, and the office's decisions on them |
/// | `inspection` | cells, history and counts, for the office and the tests |
/// | `erasure` | erasing a resident everywhere (AVG art. 17) |
/// | `audit` | the audit trail |
/// | `backups` | online backup and restore |
/// | `attachments` | the content of attachment cells |
/// | `demo` | the demo people and users |
///
/// All methods block: call them off the event loop.
public final class ServerStore: Sendable {
    /// The data model the store enforces and serves.
    public let dataModel: DataModel
    /// The scope rules of `dataModel`, prepared for the store's queries.
    let scopePlan: ScopePlan
    /// The columns whose values rows are found by (references, unique keys).
    let links: RowLinks
    /// The numbers records and history entries name columns by (decision 0034).
    let columnNames: NumberedNames
    /// The numbers records name devices by (decision 0036).
    let deviceNumbers: NumberedNames
    /// Per table of `dataModel`, what the push path needs to know for every change.
    let pushPlans: [String: TablePushPlan]
    /// The database the store runs on.
    public let dialect: StoreDialect
    /// The data directory of an SQLite store (empty for PostgreSQL).
    public let directory: String
    /// The database of a PostgreSQL store, which other `ktd` processes may write to as well.
    public let postgresLocation: PostgresLocation?
    /// The furthest a pushed version may be ahead of the server clock before it is refused.
    public let maxClockSkewMilliseconds: Int64
    let writer: Locked<any StoreConnection>
    /// SQLite: checkpoints the write-ahead log off the writer's path (decision 0016).
    let checkpointer: BackgroundCheckpointer?
    /// The read connections (pulls, authentication, the office's reads).
    let reader: ReaderPool
    /// Feed pages that devices with the same access and cursor share (issue 23).
    let sharedPages = SharedPages()
    /// A connection of its own for reading attachment content (opened on first use): a download does not
    /// hold the pulls' reader, and on SQLite it reads without the reader's memory map, so serving
    /// gigabytes of photos does not map them into the server's memory.
    let attachmentReader = Locked<(any StoreConnection)?>(nil)
    /// The running SHA-256 of each upload in progress in this process, so completing one need not read
    /// the content back (`Attachments`).
    let uploadHashes = Locked<[String: UploadHash]>([:])
    /// Server time in milliseconds; injectable so tests can move it.
    public let clock: @Sendable () -> Int64

    /// How much of the SQLite store the read connection maps into memory (address space, not memory:
    /// pages are read on demand and shared with the OS page cache).
    static let readerMemoryMapBytes = 1 << 32

    /// The file name of the store inside the data directory.
    public static let fileName = "keukentafel.sqlite"

    /// Opens the SQLite store in `directory`, creating directory and store on first use.
    public convenience init(directory: String, dataModel: DataModel, maxClockSkewMilliseconds: Int64 = 5 * 60 * 1000,
                            clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent(Self.fileName)
        let connection = try SQLiteConnection(path: path)
        // secure_delete off whatever the SQLite build's default: the history keeps old values anyway,
        // and an erasure rebuilds the file (VACUUM), which removes deleted bytes for certain.
        // temp_store=MEMORY: a multi-row statement keeps a statement journal of the pages it changes;
        // past 64 KiB SQLite spills it to a temporary file, and a profile of the real model's ingest
        // showed those writes at a sixth of the push's time.
        try connection.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA secure_delete=OFF; PRAGMA temp_store=MEMORY;")
        try StoreSchema.refuseNewerLayout(connection)
        try connection.execute(StoreSchema.sqlite)
        try StoreSchema.migrate(connection)
        let openReader = { () throws -> any StoreConnection in
            let reader = try SQLiteConnection(path: path)
            // Pulls read the whole store in feed order: through a memory map rather than a read() per
            // page (profiles of a bootstrap showed pread at an eighth of the server's time), with the
            // writer's cache size.
            try reader.execute("PRAGMA query_only=ON; PRAGMA mmap_size=\(Self.readerMemoryMapBytes); PRAGMA cache_size=-65536;")
            return reader
        }
        let readers = ReaderPool(first: try openReader(), open: openReader)
        try self.init(dialect: .sqlite, directory: directory, postgres: nil, writer: connection, readers: readers, dataModel: dataModel,
                      maxClockSkewMilliseconds: maxClockSkewMilliseconds, clock: clock,
                      checkpointer: try BackgroundCheckpointer(writer: connection))
    }

    /// Opens the store on PostgreSQL (decision 0013), creating its tables on first use. Several
    /// `ktd` processes may share one database.
    public convenience init(postgres location: PostgresLocation, dataModel: DataModel, maxClockSkewMilliseconds: Int64 = 5 * 60 * 1000,
                            clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) throws {
        let connection = try PostgresStoreConnection(location)
        // Two processes starting at once must not both create the tables: the write lock orders them.
        try connection.transaction {
            try StoreSchema.refuseNewerLayout(connection)
            try connection.execute(StoreSchema.postgreSQL)
            try StoreSchema.migrateShared(connection)
            try StoreSchema.migrateHistoryFormat(connection)
            try StoreSchema.migrateHistory(connection)
            try StoreSchema.migrateRecordFormat(connection)
            try StoreSchema.migrateCells(connection)
            try StoreSchema.migrateDeliveries(connection)
            try StoreSchema.migrateHistoryWriters(connection)
            try StoreSchema.migrateRowLinks(connection)
            try StoreSchema.noteLayout(connection)
        }
        let readers = ReaderPool(first: try PostgresStoreConnection(location)) { try PostgresStoreConnection(location) }
        try self.init(dialect: .postgresql, directory: "", postgres: location, writer: connection, readers: readers, dataModel: dataModel,
                      maxClockSkewMilliseconds: maxClockSkewMilliseconds, clock: clock)
    }

    private init(dialect: StoreDialect, directory: String, postgres: PostgresLocation?, writer connection: any StoreConnection, readers: ReaderPool,
                 dataModel: DataModel, maxClockSkewMilliseconds: Int64, clock: @escaping @Sendable () -> Int64,
                 checkpointer: BackgroundCheckpointer? = nil) throws {
        self.checkpointer = checkpointer
        let plan = ScopePlan(dataModel)
        let links = RowLinks(dataModel)
        let (node, columns, devices) = try connection.transaction { () -> (NodeID, NumberedNames, NumberedNames) in
            let columns = NumberedNames(try ColumnNames.register(ColumnNames.columns(of: dataModel), connection)) {
                try readers.withUnpooledConnection { try ColumnNames.read($0) }
            }
            let devices = NumberedNames(try DeviceNumbers.read(connection)) {
                try readers.withUnpooledConnection { try DeviceNumbers.read($0) }
            }
            try links.prepare(connection, columns: columns, devices: devices)
            try connection.run("INSERT INTO meta (key, value) VALUES ('node', ?) ON CONFLICT DO NOTHING", [.text(NodeID.random().description)])
            try connection.run("INSERT INTO meta (key, value) VALUES ('created_at', ?) ON CONFLICT DO NOTHING", [.text(iso8601(clock()))])
            try connection.run("INSERT INTO meta (key, value) VALUES ('seq', ?) ON CONFLICT DO NOTHING", [.integer(0)])
            // The feed's epoch: a new one after every restore, so devices notice the store went back.
            try connection.run("INSERT INTO meta (key, value) VALUES ('epoch', ?) ON CONFLICT DO NOTHING", [.text(NodeID.random().description)])
            guard case .text(let nodeHex)? = try connection.scalar("SELECT value FROM meta WHERE key = 'node'"), let node = NodeID(nodeHex) else {
                throw StoreError.corrupt("the store has no valid node id in table meta")
            }
            return (node, columns, devices)
        }
        self.columnNames = columns
        self.deviceNumbers = devices
        self.dataModel = dataModel
        self.scopePlan = plan
        self.links = links
        self.pushPlans = Dictionary(dataModel.tables.map { ($0.name, TablePushPlan($0, scopePlan: plan)) }) { first, _ in first }
        self.dialect = dialect
        self.directory = directory
        self.postgresLocation = postgres
        self.node = node
        self.maxClockSkewMilliseconds = maxClockSkewMilliseconds
        self.clock = clock
        self.writer = Locked(connection)
        self.reader = readers
    }

    /// The server's own node id (fixed when the store is created), for writes made by the office
    /// through `ktd admin` and for re-stamping fixed cells.
    public let node: NodeID

    /// Users, scopes, devices and their tokens.
    public var accounts: Accounts { Accounts(store: self) }
    /// Conflict records, and the office's decisions on them.
    public var conflicts: Conflicts { Conflicts(store: self) }
    /// Cells, history and counts as the store holds them.
    public var inspection: Inspection { Inspection(store: self) }
    /// Erasing a resident and everything about them.
    public var erasure: Erasure { Erasure(store: self) }
    /// Pruning history older than a retention period.
    public var retention: HistoryRetention { HistoryRetention(store: self) }
    /// The audit trail.
    public var audit: AuditTrail { AuditTrail(store: self) }
    /// Online backup and restore (SQLite).
    public var backups: Backups { Backups(store: self) }
    /// The demo people and users.
    public var demo: DemoLoader { DemoLoader(store: self) }
    /// Which devices still hold what they were told to delete.
    public var deletionReceipts: DeletionReceipts { DeletionReceipts(store: self) }
    /// The devices' logs of who viewed which record (decision 0030).
    public var views: ViewLogStore { ViewLogStore(store: self) }
    /// The content of attachments (photos, scans, signed documents).
    public var attachments: Attachments { Attachments(store: self) }

    /// Runs `body` on the attachment reader, opening it on first use.
    func withAttachmentReader<T>(_ body: (any StoreConnection) throws -> T) throws -> T {
        try attachmentReader.withLock { connection in
            if connection == nil {
                switch dialect {
                case .sqlite:
                    let opened = try SQLiteConnection(path: (directory as NSString).appendingPathComponent(Self.fileName))
                    // No memory map, and a small cache: content is read once and sent.
                    try opened.execute("PRAGMA query_only=ON; PRAGMA cache_size=-2048;")
                    connection = opened
                case .postgresql:
                    guard let location = postgresLocation else { throw StoreError.corrupt("a PostgreSQL store without its location") }
                    connection = try PostgresStoreConnection(location)
                }
            }
            return try connection!.transaction(immediate: false) { try body(connection!) }
        }
    }

    /// Fails with a clear message when an operation exists on the SQLite store only.
    func requireSQLite(_ operation: String, instead: String) throws {
        guard dialect == .sqlite else { throw AdminError.invalid("\(operation) works on the SQLite store only; on PostgreSQL, \(instead)") }
    }
}
