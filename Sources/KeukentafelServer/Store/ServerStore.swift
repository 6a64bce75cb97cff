import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// The server's embedded store: one SQLite file in WAL mode holding the current state of every
/// cell, the history of every accepted change, conflict records and devices.
///
/// Writes go through one connection under a lock (SQLite has one writer at a time anyway); reads
/// for pulls use a second connection, so a pull never waits for a push to finish (WAL snapshots).
/// All methods block: call them off the event loop.
public final class ServerStore: Sendable {
    public let dataModel: DataModel
    /// The scope rules of `dataModel`, prepared for the store's queries.
    let scopePlan: ScopePlan
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
    let reader: Locked<any StoreConnection>
    /// Server time in milliseconds; injectable so tests can move it.
    public let clock: @Sendable () -> Int64

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
        try connection.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA secure_delete=OFF;")
        try connection.execute(Self.ddl)
        try Self.migrate(connection)
        let readConnection = try SQLiteConnection(path: path)
        try readConnection.execute("PRAGMA query_only=ON;")
        try self.init(dialect: .sqlite, directory: directory, postgres: nil, writer: connection, reader: readConnection, dataModel: dataModel,
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
            try connection.execute(Self.postgresDDL)
            try Self.migrateShared(connection)
        }
        let readConnection = try PostgresStoreConnection(location)
        try self.init(dialect: .postgresql, directory: "", postgres: location, writer: connection, reader: readConnection, dataModel: dataModel,
                      maxClockSkewMilliseconds: maxClockSkewMilliseconds, clock: clock)
    }

    private init(dialect: StoreDialect, directory: String, postgres: PostgresLocation?, writer connection: any StoreConnection, reader: any StoreConnection,
                 dataModel: DataModel, maxClockSkewMilliseconds: Int64, clock: @escaping @Sendable () -> Int64,
                 checkpointer: BackgroundCheckpointer? = nil) throws {
        self.checkpointer = checkpointer
        let plan = ScopePlan(dataModel)
        let node = try connection.transaction { () -> NodeID in
            try Self.createReferenceIndex(connection, plan: plan)
            try connection.run("INSERT INTO meta (key, value) VALUES ('node', ?) ON CONFLICT DO NOTHING", [.text(NodeID.random().description)])
            try connection.run("INSERT INTO meta (key, value) VALUES ('created_at', ?) ON CONFLICT DO NOTHING", [.text(iso8601(clock()))])
            // Unique keys are looked up by value, for the few tables that have them.
            let keyed = dataModel.tables.filter { $0.unique != nil }.map { "'\($0.name)'" }
            if !keyed.isEmpty {
                // Partial index; a table that gains a key in a later model is still checked, only by a scan.
                try connection.execute("CREATE INDEX IF NOT EXISTS cells_by_key_value ON cells(tbl, col, value) WHERE tbl IN (\(keyed.joined(separator: ", ")))")
            }
            try connection.run("INSERT INTO meta (key, value) VALUES ('seq', ?) ON CONFLICT DO NOTHING", [.integer(0)])
            // The feed's epoch: a new one after every restore, so devices notice the store went back.
            try connection.run("INSERT INTO meta (key, value) VALUES ('epoch', ?) ON CONFLICT DO NOTHING", [.text(NodeID.random().description)])
            guard case .text(let nodeHex)? = try connection.scalar("SELECT value FROM meta WHERE key = 'node'"), let node = NodeID(nodeHex) else {
                throw StoreError.corrupt("the store has no valid node id in table meta")
            }
            return node
        }
        self.dataModel = dataModel
        self.scopePlan = plan
        self.pushPlans = Dictionary(dataModel.tables.map { ($0.name, TablePushPlan($0, scopePlan: plan)) }) { first, _ in first }
        self.dialect = dialect
        self.directory = directory
        self.postgresLocation = postgres
        self.node = node
        self.maxClockSkewMilliseconds = maxClockSkewMilliseconds
        self.clock = clock
        self.writer = Locked(connection)
        self.reader = Locked(reader)
    }

    /// The server's own node id (fixed when the store is created), for writes made by the office
    /// through `ktd admin` and for re-stamping fixed cells.
    public let node: NodeID

    static let ddl = """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS users (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            profile TEXT,
            created_at TEXT NOT NULL,
            disabled_at TEXT
        );
        CREATE TABLE IF NOT EXISTS user_scopes (
            user_id TEXT NOT NULL, scope TEXT NOT NULL, granted_at TEXT NOT NULL,
            PRIMARY KEY (user_id, scope)
        ) WITHOUT ROWID;
        -- When a user lost a scope: writes they made before still count as theirs to make.
        -- removed_seq: the feed's sequence number then; a device sent that far knows of the removal.
        CREATE TABLE IF NOT EXISTS user_scope_removals (
            user_id TEXT NOT NULL, scope TEXT NOT NULL, removed_ms INTEGER NOT NULL, removed_seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS user_scope_removals_by_user ON user_scope_removals(user_id);
        -- resync = 1: the device's next pull tells it to start over (its user's scopes changed).
        -- node: the replica node bound to the device by its first push; node_high_water: the newest
        -- version (HLC) accepted from it; informed_seq: how far the feed was sent to it (decision 0017).
        CREATE TABLE IF NOT EXISTS devices (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            revoked_at TEXT,
            user_id TEXT REFERENCES users(id),
            lost_at TEXT,
            resync INTEGER NOT NULL DEFAULT 0,
            node INTEGER,
            node_high_water INTEGER NOT NULL DEFAULT 0,
            informed_seq INTEGER NOT NULL DEFAULT 0
        );
        -- The scopes each row is in, derived from the data model's scope rules (ScopePlan).
        CREATE TABLE IF NOT EXISTS row_scopes (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, scope TEXT NOT NULL,
            PRIMARY KEY (tbl, row_id, scope)
        ) WITHOUT ROWID;
        -- Rows that left a scope (kind evict) or were erased (kind purge), in feed order.
        CREATE TABLE IF NOT EXISTS evictions (
            seq INTEGER NOT NULL, tbl TEXT NOT NULL, row_id TEXT NOT NULL, scope TEXT NOT NULL,
            at_ms INTEGER NOT NULL, kind TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS evictions_by_seq ON evictions(seq);
        CREATE INDEX IF NOT EXISTS evictions_by_row ON evictions(tbl, row_id);
        -- Erased rows, by id only, so they can never be written again.
        CREATE TABLE IF NOT EXISTS erased_rows (tbl TEXT NOT NULL, row_id TEXT NOT NULL, PRIMARY KEY (tbl, row_id)) WITHOUT ROWID;
        -- Which device received which row, first and last time: "who received this resident's data".
        CREATE TABLE IF NOT EXISTS deliveries (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, device TEXT NOT NULL,
            first_at TEXT NOT NULL, last_at TEXT NOT NULL, times INTEGER NOT NULL,
            PRIMARY KEY (tbl, row_id, device)
        ) WITHOUT ROWID;
        -- Administrative actions. Append-only: only an erasure may remove entries (their payloads).
        CREATE TABLE IF NOT EXISTS audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT, detail TEXT
        );
        CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
            WHEN (SELECT value FROM meta WHERE key = 'erasing') IS NOT 1
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        -- The current state of every cell; seq orders the change feed.
        CREATE TABLE IF NOT EXISTS cells (
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL,
            value, hlc INTEGER NOT NULL, node INTEGER NOT NULL,
            seq INTEGER NOT NULL, device TEXT,
            PRIMARY KEY (tbl, row_id, col)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS cells_by_seq ON cells(seq);
        -- Every accepted change: the history of each cell, and what makes pushes idempotent.
        -- A rowid table: history is appended in arrival order; change ids are looked up by index.
        CREATE TABLE IF NOT EXISTS changes (
            change_id TEXT NOT NULL UNIQUE,
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL,
            value, hlc INTEGER NOT NULL, node INTEGER NOT NULL,
            base_hlc INTEGER, base_node INTEGER,
            device TEXT, received_at TEXT NOT NULL,
            status TEXT NOT NULL, won INTEGER, conflict_id INTEGER
        );
        CREATE INDEX IF NOT EXISTS changes_by_cell ON changes(tbl, row_id, col);
        CREATE TABLE IF NOT EXISTS conflicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            seq INTEGER NOT NULL,
            tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL,
            winner_value, winner_hlc INTEGER NOT NULL, winner_node INTEGER NOT NULL, winner_device TEXT,
            loser_value, loser_hlc INTEGER NOT NULL, loser_node INTEGER NOT NULL, loser_device TEXT,
            base_hlc INTEGER, base_node INTEGER,
            rule TEXT NOT NULL, review INTEGER NOT NULL,
            recorded_at TEXT NOT NULL,
            resolved_at TEXT, resolved_by TEXT, resolution TEXT
        );
        CREATE INDEX IF NOT EXISTS conflicts_by_seq ON conflicts(seq);
        CREATE INDEX IF NOT EXISTS conflicts_by_row ON conflicts(tbl, row_id);
        """
}

extension ServerStore {
    /// Brings a store made by an earlier version up to date (columns added since).
    static func migrate(_ connection: any StoreConnection) throws {
        let columns = Set(try connection.query("PRAGMA table_info(devices)").compactMap { $0[1].string })
        for (column, definition) in [("user_id", "TEXT"), ("lost_at", "TEXT"), ("resync", "INTEGER NOT NULL DEFAULT 0"),
                                     ("node", "INTEGER"), ("node_high_water", "INTEGER NOT NULL DEFAULT 0"),
                                     ("informed_seq", "INTEGER NOT NULL DEFAULT 0")]
        where !columns.contains(column) {
            try connection.execute("ALTER TABLE devices ADD COLUMN \(column) \(definition)")
        }
        let removalColumns = Set(try connection.query("PRAGMA table_info(user_scope_removals)").compactMap { $0[1].string })
        if !removalColumns.contains("removed_seq") {
            try connection.execute("ALTER TABLE user_scope_removals ADD COLUMN removed_seq INTEGER NOT NULL DEFAULT 0")
        }
        try migrateShared(connection)
    }

    /// Reference cells looked up by the row they point to (scope propagation, erasure, audit). A
    /// partial index over the reference columns only; rebuilt when the model's set of them changes.
    static func createReferenceIndex(_ connection: any StoreConnection, plan: ScopePlan) throws {
        let definition = plan.referenceColumnCondition
        if try connection.scalar("SELECT value FROM meta WHERE key = 'reference_index'")?.string != definition {
            try connection.execute("DROP INDEX IF EXISTS cells_by_reference")
            try connection.setMeta("reference_index", .text(definition))
        }
        try connection.execute("CREATE INDEX IF NOT EXISTS cells_by_reference ON cells(value, tbl, col) WHERE \(definition)")
    }

    /// Appends an administrative action to the audit trail, inside the caller's transaction.
    func audit(_ connection: any StoreConnection, actor: String, action: String, subject: String?, detail: String?) throws {
        try connection.run("INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                           [.text(iso8601(clock())), .text(actor), .text(action), subject.map(CellValue.text) ?? .null,
                            detail.map(CellValue.text) ?? .null])
    }
}

public enum StoreError: Error, CustomStringConvertible {
    case corrupt(String)
    case notFound(String)

    public var description: String {
        switch self {
        case .corrupt(let why): return "store is damaged: \(why)"
        case .notFound(let what): return "\(what) not found"
        }
    }
}

/// Formats server milliseconds as ISO-8601 UTC with milliseconds.
func iso8601(_ milliseconds: Int64) -> String {
    var seconds = time_t(milliseconds / 1000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ value: Int32, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds % 1000), 3))Z"
}

extension CellValue {
    var int64: Int64? {
        if case .integer(let v) = self { return v }
        return nil
    }

    var string: String? {
        if case .text(let v) = self { return v }
        return nil
    }
}

extension CellVersion {
    /// Reads a version stored as two INTEGER columns.
    init?(hlc: CellValue, node: CellValue) {
        guard case .integer(let h) = hlc, case .integer(let n) = node, let id = NodeID(rawValue: UInt64(n)) else { return nil }
        self.init(hlc: UInt64(h), node: id)
    }

    var hlcValue: CellValue { .integer(Int64(hlc)) }
    var nodeValue: CellValue { .integer(Int64(node.rawValue)) }
}
