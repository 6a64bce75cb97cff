import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// A device's local replica: one SQLite file with the synced tables, the versions of their cells,
/// the outbox of local writes and the conflicts the server reported.
///
/// The app reads and writes the tables with ordinary SQL through `execute(_:)`/`query(_:)`; triggers
/// capture each write into the outbox with a new HLC version and the version it replaced (its base).
/// `SyncEngine` pushes the outbox and pulls the change feed.
///
/// ```swift
/// let replica = try Replica.connect(path: "laptop.sqlite", serverURL: "https://kt.example", token: token)
/// try replica.execute("UPDATE cases SET status = 'closed' WHERE id = ?", [.text(caseID)])
/// try SyncEngine(replica: replica).sync()
/// ```
///
/// A replica is safe to share between threads. Writes (the app's and the sync's) take turns on one
/// connection; the app's queries run on read connections of their own and never wait for them.
public final class Replica: @unchecked Sendable {
    public let path: String
    public let node: NodeID
    public internal(set) var dataModel: DataModel
    let connection: SQLiteConnection
    let lock = NSRecursiveLock()
    /// How deep the current holder of `lock` is in it (only touched while holding it).
    var lockDepth = 0
    /// True while the writer runs the app's SQL: `AppAccess` applies (see `Replica+SQL`).
    var appSQL = false
    /// The app's statements with arguments, compiled once.
    var appStatements: [String: SQLiteStatement] = [:]
    /// Connections for the app's queries, which never wait for the writer.
    let readers: ReadPool
    /// Observed queries and table watchers (`Replica+Observe`).
    let observers = ObservationCenter()
    /// Milliseconds since 1970; injectable so tests can put the device's clock a year ahead.
    let clock: @Sendable () -> Int64
    private var hlc = HybridLogicalClock()
    /// False while pulled changes are applied, so the triggers do not capture them as local writes.
    private var capturing = true
    /// Prepared upserts of the page-apply path, whose SQL depends on the columns (see `Replica+Apply`).
    var upserts: [UpsertShape: SQLiteStatement] = [:]
    /// What the page-apply path needs of each table of `dataModel`, worked out once (see `tablePlan`).
    var tablePlans: [String: TablePlan] = [:]

    /// A table of the data model as the page-apply path uses it, for every row of a page.
    struct TablePlan {
        let table: DataModel.Table
        let quotedName: String
        /// Column name → position in `table.columns`.
        let positions: [String: Int]
    }

    struct UpsertShape: Hashable {
        var table: String
        /// Bit i set: column i of the table is written.
        var columns: UInt64
        /// An `UPDATE` of a row that exists rather than an `INSERT … ON CONFLICT DO UPDATE`.
        var updateOnly = false
    }

    /// How a remote wipe deletes a file; a test makes it fail, as a file it may not delete would (which
    /// a test running as root cannot otherwise arrange).
    var removeFile: (String) throws -> Void = { try FileManager.default.removeItem(atPath: $0) }

    /// Test hook: called after each row of a pulled page is applied; throwing aborts the page.
    var afterApplyingRow: ((Int) throws -> Void)?

    /// Opens an existing replica; an encrypted one with its passphrase (else `ReplicaError.passphraseRequired`;
    /// a wrong one is `ReplicaError.wrongPassphrase` and changes nothing). A passphrase given for a plain
    /// replica is not needed and not used.
    public convenience init(path: String, passphrase: String? = nil, clock: @escaping @Sendable () -> Int64 = Replica.systemClock) throws {
        var key: ReplicaKey?
        if Replica.isEncrypted(path: path) {
            guard let passphrase else {
                throw ReplicaError.passphraseRequired("the replica '\(path)' is encrypted; give its passphrase "
                                                      + "(kt reads KT_PASSPHRASE or --passphrase-fd, or asks on the terminal)")
            }
            key = try ReplicaKey.unlock(replicaPath: path, passphrase: passphrase)
        }
        try self.init(path: path, key: key, clock: clock)
    }

    /// Opens an existing replica with a key unlocked before (`ReplicaKey.unlock`); nil for a plain replica.
    public init(path: String, key: ReplicaKey?, clock: @escaping @Sendable () -> Int64 = Replica.systemClock) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ReplicaError.notInitialized("no replica at '\(path)'; create one with `kt init --db \(path) --server URL --token TOKEN`")
        }
        if key == nil, Replica.isEncrypted(path: path) {
            throw ReplicaError.passphraseRequired("the replica '\(path)' is encrypted; unlock its key first (ReplicaKey.unlock)")
        }
        let connection: SQLiteConnection
        // secure_delete: deleted rows (an erased resident) are overwritten in the file, not only unlinked.
        // temp_store=MEMORY: statement journals and sorts never reach a temporary file, which would be
        // both slow (a write per spilled page) and a copy of residents' data outside the replica (and
        // one the encryption VFS refuses to write).
        do {
            connection = try SQLiteConnection(path: path, cipher: key?.cipher)
            try connection.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768; PRAGMA secure_delete=ON; PRAGMA temp_store=MEMORY;")
        } catch let error as SQLiteError where error.isUnreadablePage || error.isNotADatabase {
            throw Replica.unreadable(path: path, encrypted: key != nil, error: error)
        }
        guard case .text(let nodeHex)? = try? connection.scalar("SELECT value FROM _kt_meta WHERE key = 'node'"),
              let node = NodeID(nodeHex),
              case .text(let modelJSON)? = try connection.scalar("SELECT value FROM _kt_meta WHERE key = 'schema'")
        else {
            throw ReplicaError.notInitialized("'\(path)' is not a Keukentafel replica (no node id or data model in _kt_meta)")
        }
        self.path = path
        self.node = node
        self.connection = connection
        self.clock = clock
        self.readers = ReadPool(path: path, cipher: key?.cipher)
        self.dataModel = try JSONDecoder().decode(DataModel.self, from: Data(modelJSON.utf8))
        try registerFunctions()
        connection.trackChanges()
        connection.setAuthorizer { [unowned self] access in
            guard self.appSQL else { return .allow }
            return AppAccess.decide(access, isSynced: { self.dataModel.table(named: $0) != nil })
        }
        try connection.execute(ReplicaSchema.metaDDL)  // idempotent: brings replicas of older releases up to date
        try migrateToRowVersions()
        try refreshCaptureTriggers()
        let conflictColumns = Set(try connection.query("PRAGMA table_info(_kt_conflicts)").map { $0[1].description })
        for column in ["winner_user", "loser_user"] where !conflictColumns.contains(column) {
            try connection.execute("ALTER TABLE _kt_conflicts ADD COLUMN \(column) TEXT")
        }
        let resolutionColumns = Set(try connection.query("PRAGMA table_info(_kt_resolutions)").map { $0[1].description })
        for (column, definition) in [("state", "TEXT NOT NULL DEFAULT 'pending'"), ("code", "TEXT"), ("message", "TEXT")]
        where !resolutionColumns.contains(column) {
            try connection.execute("ALTER TABLE _kt_resolutions ADD COLUMN \(column) \(definition)")
        }
    }

    /// Creates a new replica file for a data model. Fails if the file exists.
    /// With `encryption: .passphrase(…)` the file is encrypted and its key file `<path>.key` written (decision 0029).
    public static func create(path: String, dataModel: DataModel, serverURL: String, token: String, caBundlePath: String? = nil,
                              encryption: ReplicaEncryption = .none,
                              clock: @escaping @Sendable () -> Int64 = Replica.systemClock) throws -> Replica {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ReplicaError.alreadyExists("'\(path)' already exists; pick another file or remove it first")
        }
        let keyPath = ReplicaKeyFile.path(forReplica: path)
        guard !FileManager.default.fileExists(atPath: keyPath) else {
            throw ReplicaError.alreadyExists("the key file '\(keyPath)' of an earlier replica is still there; remove it first")
        }
        try dataModel.check()
        var key: ReplicaKey?
        if case .passphrase(let passphrase) = encryption {
            let (file, cipher) = try ReplicaKeyFile.create(passphrase: passphrase)
            try file.write(to: keyPath)
            key = ReplicaKey(cipher: cipher)
        }
        do {
            let connection = try SQLiteConnection(path: path, cipher: key?.cipher)
            try connection.formatForCipher()
            try connection.execute("PRAGMA journal_mode=WAL; PRAGMA temp_store=MEMORY;")
            try connection.transaction {
                try connection.execute(ReplicaSchema.metaDDL)
                let model = String(decoding: try JSONEncoder().encode(dataModel), as: UTF8.self)
                for (key, value) in [("node", NodeID.random().description), ("schema", model), ("server_url", serverURL),
                                     ("token", token), ("cursor", "0"), ("created_at", String(clock()))] {
                    try connection.run("INSERT INTO _kt_meta (key, value) VALUES (?, ?)", [.text(key), .text(value)])
                }
                if let caBundlePath {
                    let absolute = URL(fileURLWithPath: caBundlePath).standardizedFileURL.path
                    try connection.run("INSERT INTO _kt_meta (key, value) VALUES ('ca_bundle', ?)", [.text(absolute)])
                }
            }
            chmod(path, 0o600)  // the file holds the device token and personal data
        } catch {
            for file in [path, path + "-wal", path + "-shm", keyPath] { try? FileManager.default.removeItem(atPath: file) }
            throw error
        }
        let replica = try Replica(path: path, key: key, clock: clock)
        try replica.createTables()
        return replica
    }

    public static let systemClock: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Replaces capture triggers made by an earlier release (`ReplicaSchema.captureVersion`).
    func refreshCaptureTriggers() throws {
        guard try meta("capture_version") != ReplicaSchema.captureVersion else { return }
        try connection.transaction {
            for table in dataModel.tables {
                try connection.execute(ReplicaSchema.dropTriggers(for: table))
                try connection.execute(ReplicaSchema.ddl(for: table))
            }
            try setMeta("capture_version", ReplicaSchema.captureVersion)
        }
    }

    func createTables() throws {
        try locked {
            try connection.transaction {
                for table in dataModel.tables { try connection.execute(ReplicaSchema.ddl(for: table)) }
            }
        }
    }

    /// Runs the replica's own work on the writer connection, with the app's access rules off.
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        try holdingWriter(appSQL: false, body)
    }

    /// Holds the writer for `body`, with the app's access rules on or off (`AppAccess`). When the
    /// outermost holder leaves, the tables its commits changed go to the observers.
    func holdingWriter<T>(appSQL app: Bool, _ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        lockDepth += 1
        let outer = appSQL
        appSQL = app
        defer {
            appSQL = outer
            lockDepth -= 1
            if lockDepth == 0 { leaveWriter() }
        }
        return try body()
    }

    // MARK: Settings kept in the file

    func meta(_ key: String) throws -> String? {
        switch try connection.scalar("SELECT value FROM _kt_meta WHERE key = ?", [.text(key)]) {
        case .text(let v)?: return v
        case .integer(let v)?: return String(v)
        default: return nil
        }
    }

    func setMeta(_ key: String, _ value: String?) throws {
        if let value {
            try connection.run("INSERT INTO _kt_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               [.text(key), .text(value)])
        } else {
            try connection.run("DELETE FROM _kt_meta WHERE key = ?", [.text(key)])
        }
    }

    public var serverURL: String { get throws { try locked { try meta("server_url") ?? "" } } }
    var token: String { get throws { try locked { try meta("token") ?? "" } } }
    /// The device token, for tools that talk to the server outside a sync (`kt upgrade`).
    public var tokenForCommands: String { get throws { try token } }
    /// Extra certificate authorities (PEM) trusted for this replica's server, set by `kt init --ca-bundle`.
    public var caBundlePath: String? { get throws { try locked { try meta("ca_bundle") } } }
    public var cursor: Int64 { get throws { try locked { Int64(try meta("cursor") ?? "0") ?? 0 } } }
    /// The epoch of the server's feed this replica follows (changes when the server's store is restored).
    var serverEpoch: String? { get throws { try locked { try meta("server_epoch") } } }
    /// The server's signature of `cursor`, sent with it so the server can tell a store that went back
    /// from a cursor it never handed out.
    var cursorProof: String? { get throws { try locked { try meta("cursor_proof") } } }
    /// A download reached the end of the feed at least once (a first download that was interrupted
    /// has not): the replica holds what the device may see, as of then.
    public var hasSynced: Bool { get throws { try locked { try meta("download_complete_at") } != nil } }
    /// When the last complete `sync()` ended.
    public var lastSyncedAt: Date? {
        get throws { try locked { try meta("last_sync_at") }.flatMap { Int64($0) }.map { Date(timeIntervalSince1970: Double($0) / 1000) } }
    }
    /// Where the current pass through the feed started, while a page said more follow (`PullResponse.floor`).
    var cursorFloor: Int64? { get throws { try locked { try meta("cursor_floor") }.flatMap { Int64($0) } } }

    // MARK: Functions the triggers call

    private func registerFunctions() throws {
        try connection.createFunction("kt_capture", argumentCount: 0) { [unowned self] _ in
            .value(.integer(self.capturing ? 1 : 0))
        }
        let nodeValue = CellValue.integer(Int64(node.rawValue))
        try connection.createFunction("kt_node", argumentCount: 0, deterministic: true) { _ in .value(nodeValue) }
        try connection.createFunction("kt_now", argumentCount: 0) { [unowned self] _ in .value(.integer(self.clock())) }
        // A new row id for apps that write SQL: `INSERT INTO visits (id, …) VALUES (kt_new_id(), …)`.
        try connection.createFunction("kt_new_id", argumentCount: 0) { _ in .value(.text(RowID.new())) }
        try connection.createFunction("kt_tick", argumentCount: 1) { [unowned self] arguments in
            // The persisted HLC joins in so that two processes writing to one file never go backwards.
            if case .integer(let persisted) = arguments[0] { self.hlc.observe(UInt64(persisted)) }
            if case .text(let persisted) = arguments[0], let value = UInt64(persisted) { self.hlc.observe(value) }
            let now = self.clock()
            return .value(.integer(Int64(self.hlc.tick(wallMilliseconds: UInt64(max(0, now))))))
        }
        try Self.registerVersionFunctions(on: connection)
        try connection.createFunction("kt_check", argumentCount: 3) { [unowned self] arguments in
            guard case .text(let tableName) = arguments[0], case .text(let columnName) = arguments[1],
                  let table = self.dataModel.table(named: tableName) else { return .error("keukentafel: bad kt_check call") }
            if columnName == "id" {
                guard case .text(let id) = arguments[2], isCanonicalUUID(id) else {
                    return .error("keukentafel: \(tableName).id must be a lowercase UUID (8-4-4-4-12 hex digits), got \(arguments[2])")
                }
                return .value(.null)
            }
            guard let column = table.column(named: columnName) else { return .value(.null) }
            if let rejection = self.dataModel.validate(arguments[2], for: column, in: table) {
                return .error("keukentafel: \(rejection.message) [\(rejection.code.rawValue)]")
            }
            return .value(.null)
        }
    }

    /// Runs `body` with capture off: for applying what came from the server.
    func withoutCapture<T>(_ body: () throws -> T) rethrows -> T {
        capturing = false
        defer { capturing = true }
        return try body()
    }

    /// Forgets a wrong (future) HLC state; only for re-stamping after a clock correction.
    func resetClock(to value: UInt64) { hlc = HybridLogicalClock(last: value) }

    /// Takes note of versions from elsewhere so later local writes order after them.
    func observe(hlc remote: UInt64) throws {
        hlc.observe(remote)
        try connection.run("""
            INSERT INTO _kt_meta (key, value) VALUES ('hlc', ?) ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)
            """, [.integer(Int64(remote))])
    }
}

extension Replica {
    static func unreadable(path: String, encrypted: Bool, error: SQLiteError) -> ReplicaError {
        if encrypted {
            return .unreadable("the replica '\(path)' cannot be read with its key: the key file belongs to another replica, or the file was damaged (\(error.message))")
        }
        return .unreadable("'\(path)' cannot be read as a plain replica: it is encrypted and its key file is missing, or it is no SQLite file (\(error.message))")
    }
}

public enum ReplicaError: Error, CustomStringConvertible {
    case notInitialized(String)
    case alreadyExists(String)
    /// The app's SQL reached for what belongs to the sync (`AppAccess`): a `_kt_*` table, the token.
    case notAllowed(String)
    /// SQL the replica cannot run as asked (several statements where one is expected, none at all).
    case invalidSQL(String)
    /// The server at a new address is not the replica's (`reconnect`).
    case wrongServer(String)
    /// A table, column or row a typed record names is not there.
    case notInModel(String)
    /// The replica is encrypted and no passphrase (or key) was given.
    case passphraseRequired(String)
    /// The passphrase does not unlock the replica's key.
    case wrongPassphrase(String)
    /// A new passphrase too short to be one.
    case weakPassphrase(String)
    /// The key file next to an encrypted replica cannot be read (damaged, wiped, of a newer release).
    case damagedKeyFile(String)
    /// A page of an encrypted replica failed authentication: the key is not this file's, or the file was damaged.
    case unreadable(String)
    /// Asked of an encrypted replica, but this one is plain.
    case notEncrypted(String)
    /// An argument out of its bounds (a view without a purpose).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .notInitialized(let why), .alreadyExists(let why), .notAllowed(let why), .invalidSQL(let why), .wrongServer(let why),
             .notInModel(let why), .passphraseRequired(let why), .wrongPassphrase(let why), .weakPassphrase(let why),
             .damagedKeyFile(let why), .unreadable(let why), .notEncrypted(let why), .invalidArgument(let why):
            return why
        }
    }

    /// A stable code for programs (`kt --json` prints it).
    public var code: String {
        switch self {
        case .notInitialized: return "not_initialized"
        case .alreadyExists: return "already_exists"
        case .notAllowed: return "not_allowed"
        case .invalidSQL: return "invalid_sql"
        case .wrongServer: return "wrong_server"
        case .notInModel: return "not_in_model"
        case .passphraseRequired: return "passphrase_required"
        case .wrongPassphrase: return "wrong_passphrase"
        case .weakPassphrase: return "weak_passphrase"
        case .damagedKeyFile: return "damaged_key_file"
        case .unreadable: return "unreadable_replica"
        case .notEncrypted: return "not_encrypted"
        case .invalidArgument: return "invalid_argument"
        }
    }
}
