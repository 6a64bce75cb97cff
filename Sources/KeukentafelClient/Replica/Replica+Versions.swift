import KeukentafelProtocol
import KeukentafelSQLite

/// Where a replica keeps the versions of its cells: `_kt_versions`, one `RowVersions` per synced row
/// (decision 0014), and the SQL functions through which the capture triggers read and write them.
extension Replica {
    /// The versions of a row's cells; empty if this replica knows none.
    func storedVersions(table: String, row: String) throws -> RowVersions {
        let read = try connection.statement("SELECT versions FROM _kt_versions WHERE tbl = ? AND row_id = ?")
        defer { read.reset() }
        try read.bind(table, at: 1)
        try read.bind(row, at: 2)
        guard try read.step(), let text = read.text(0) else { return RowVersions() }
        return try RowVersions(decoding: text)
    }

    func storeVersions(_ versions: RowVersions, table: String, row: String) throws {
        let write = try connection.statement("""
            INSERT INTO _kt_versions (tbl, row_id, versions) VALUES (?, ?, ?)
            ON CONFLICT (tbl, row_id) DO UPDATE SET versions = excluded.versions
            """)
        try write.bind(table, at: 1)
        try write.bind(row, at: 2)
        try write.bind(versions.encoded, at: 3)
        try write.run()
    }

    /// The functions the capture triggers (ReplicaSchema) and a few queries use on `versions` texts.
    /// A malformed text aborts the statement rather than being read as fewer versions. Pure, so the
    /// read connections have them too.
    static func registerVersionFunctions(on connection: SQLiteConnection) throws {
        func decoded(_ argument: CellValue) throws -> RowVersions {
            if case .text(let text) = argument { return try RowVersions(decoding: text) }
            return RowVersions()  // NULL: a row without versions yet
        }
        func function(_ name: String, _ count: Int32, _ body: @escaping ([CellValue]) throws -> CellValue) throws {
            try connection.createFunction(name, argumentCount: count, deterministic: true) { arguments in
                do { return .value(try body(arguments)) } catch { return .error("\(error)") }
            }
        }
        func integer(_ value: UInt64?) -> CellValue { value.map { .integer(Int64($0)) } ?? .null }

        // kt_versions_set(versions, column, hlc, node): the versions with that cell's version replaced.
        try function("kt_versions_set", 4) { arguments in
            guard case .text(let column) = arguments[1], case .integer(let hlc) = arguments[2], hlc >= 0,
                  case .integer(let node) = arguments[3], let nodeID = NodeID(rawValue: UInt64(max(0, node)))
            else { throw RowVersionsError(text: "kt_versions_set(\(arguments))") }
            var versions = try decoded(arguments[0])
            versions.set(column, CellVersion(hlc: UInt64(hlc), node: nodeID))
            return .text(versions.encoded)
        }
        // kt_version_hlc / kt_version_node(versions, column): one cell's version, NULL if it has none.
        try function("kt_version_hlc", 2) { arguments in
            guard case .text(let column) = arguments[1] else { return .null }
            return integer(try decoded(arguments[0])[column]?.hlc)
        }
        try function("kt_version_node", 2) { arguments in
            guard case .text(let column) = arguments[1] else { return .null }
            return integer(try decoded(arguments[0])[column]?.node.rawValue)
        }
        // The newest version of the row other than its tombstone: the base of a deletion.
        try function("kt_versions_newest_hlc", 1) { integer(try decoded($0[0]).newestOtherThanTombstone?.hlc) }
        try function("kt_versions_newest_node", 1) { integer(try decoded($0[0]).newestOtherThanTombstone?.node.rawValue) }
        // kt_versions_newest_up_to(versions, limit): the greatest hlc of the row not above limit (re-stamping).
        try function("kt_versions_newest_up_to", 2) { arguments in
            guard case .integer(let limit) = arguments[1] else { return .null }
            return integer(try decoded(arguments[0]).entries.map(\.version.hlc).filter { $0 <= UInt64(max(0, limit)) }.max())
        }
        // How many cells of the row have a version.
        try function("kt_versions_count", 1) { .integer(Int64(try decoded($0[0]).count)) }
    }

    /// Replicas made before decision 0014 keep one `_kt_clock` row per cell. The first time such a
    /// replica is opened, its versions move to `_kt_versions` and its kept values to `_kt_kept`, and
    /// the capture triggers are rebuilt, in one transaction: after a crash, the old layout or the new.
    func migrateToRowVersions() throws {
        guard try connection.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_kt_clock'") != nil else { return }
        try connection.transaction {
            let read = try connection.prepare("SELECT tbl, row_id, col, hlc, node FROM _kt_clock ORDER BY tbl, row_id")
            var current: (table: String, row: String)?
            var versions = RowVersions()
            while try read.step() {
                guard let table = read.text(0), let row = read.text(1), let column = read.text(2),
                      let node = NodeID(rawValue: UInt64(max(0, read.int64(4)))), read.int64(3) >= 0
                else { throw RowVersionsError(text: "a _kt_clock row that is no version") }
                if let last = current, last.table != table || last.row != row {
                    try storeVersions(versions, table: last.table, row: last.row)
                    versions = RowVersions()
                }
                current = (table, row)
                versions.set(column, CellVersion(hlc: UInt64(read.int64(3)), node: node))
            }
            read.reset()  // no statement may still read the table that is dropped below
            if let last = current { try storeVersions(versions, table: last.table, row: last.row) }
            // A kept NULL and no kept value read the same: a revived row's missing cells are NULL.
            try connection.execute("""
                INSERT INTO _kt_kept (tbl, row_id, col, val) SELECT tbl, row_id, col, val FROM _kt_clock WHERE val IS NOT NULL;
                DROP TRIGGER IF EXISTS _kt_outbox_clock;
                DROP TABLE _kt_clock;
                """)
            for table in dataModel.tables {
                try connection.execute(ReplicaSchema.dropTriggers(for: table))
                try connection.execute(ReplicaSchema.ddl(for: table))
            }
        }
    }
}
