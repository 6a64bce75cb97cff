import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// The store's history: one entry per row a push wrote to (decision 0018), and stores made before
/// that, with one `changes` row per cell, moving to it when opened.
@Suite("Store layout")
struct StoreLayoutTests {
    /// A store made by the release before decision 0018 (`sqlite3 .dump` of the README walkthrough's
    /// store plus an office edit of a real, a NULL written and a deletion): 229 changes, one conflict
    /// and its resolution, two devices and the demo loader.
    static let oldStoreDump = repositoryRoot.appendingPathComponent("Tests/Fixtures/store-per-cell-history.sql").path
    static let caseID = "c0000000-0000-4000-8000-000000000005"

    /// A new data directory whose store is `dump` loaded as it is (the layout of the release that made it).
    static func dataDirectory(from dump: String, label: String) throws -> (directory: String, path: String) {
        let directory = try temporaryDirectory(label)
        let path = directory + "/" + ServerStore.fileName
        try SQLiteConnection(path: path).execute(try String(contentsOfFile: dump, encoding: .utf8))
        return (directory, path)
    }

    /// Every change of the old layout as one line, in arrival order.
    static func oldChanges(_ connection: any StoreConnection, order: String) throws -> [String] {
        try connection.query("""
            SELECT change_id, tbl, row_id, col, value, hlc, node, base_hlc, base_node, device, received_at, status, won, conflict_id
            FROM changes ORDER BY \(order)
            """).map { $0.map(\.description).joined(separator: "|") }
    }

    /// The column numbers of the store on `connection` (none in a store from before decision 0034).
    static func columnNames(_ connection: any StoreConnection) throws -> NumberedNames {
        try StoreSchema.hasTable("column_names", connection) ? .fixed(ColumnNames.read(connection)) : .fixed(.none)
    }

    /// The device numbers of the store on `connection` (none in a store from before decision 0032).
    static func deviceNumbers(_ connection: any StoreConnection) throws -> Numbering {
        try StoreSchema.hasColumn("devices", "no", connection) ? DeviceNumbers.read(connection) : .none
    }

    /// Every change of the new layout as the same line, in history order.
    static func newChanges(_ connection: any StoreConnection) throws -> [String] {
        let names = try columnNames(connection)
        var lines: [String] = []
        // The writer by id or name and the time as ISO text, whether the store keeps them so or (decision 0035) not.
        let byNumber = try StoreSchema.hasColumn("history", "received_ms", connection)
        let read = try connection.cachedStatement(byNumber
            ? "SELECT h.tbl, h.row_id, coalesce(d.id, h.device), h.received_ms, h.n, h.changes FROM history h LEFT JOIN devices d ON d.no = h.device_no ORDER BY h.id"
            : "SELECT tbl, row_id, device, received_at, n, changes FROM history ORDER BY id")
        defer { read.reset() }
        while try read.step() {
            var entry = (0..<5).map { read.value(Int32($0)) }
            if byNumber { entry[3] = .text(iso8601(read.int64(3))) }
            let changes = try #require(try read.withBytes(5) { try HistoryCoding.decode($0, columns: names) })
            #expect(entry[4].int64 == Int64(changes.count), "n counts the entry's changes")
            for c in changes {
                let fields: [CellValue] = [
                    .text(c.id), entry[0], entry[1], .text(c.column), c.value, c.version.hlcValue, c.version.nodeValue,
                    c.base?.hlcValue ?? .null, c.base?.nodeValue ?? .null, entry[2], entry[3], .text(c.status.rawValue),
                    c.won.map { .integer($0 ? 1 : 0) } ?? .null, c.conflict.map(CellValue.integer) ?? .null,
                ]
                lines.append(fields.map(\.description).joined(separator: "|"))
            }
        }
        return lines
    }

    /// Every cell of the per-cell layout (before decision 0020) as one line, by table, row and column.
    static func oldCells(_ connection: any StoreConnection) throws -> [String] {
        try connection.query("SELECT tbl, row_id, col, value, hlc, node, seq, device FROM cells ORDER BY tbl, row_id, col")
            .map { $0.map(\.description).joined(separator: "|") }
    }

    /// Every cell the records hold, as the same line.
    static func recordCells(_ connection: any StoreConnection) throws -> [String] {
        let names = try columnNames(connection), devices = NumberedNames.fixed(try deviceNumbers(connection))
        var lines: [String] = []
        let stmt = try connection.cachedStatement("SELECT tbl, row_id, cells, seq, n FROM records ORDER BY tbl, row_id")
        defer { stmt.reset() }
        while try stmt.step() {
            let cells = try #require(try stmt.withBytes(2) { try RowCoding.decode($0, columns: names, devices: devices) })
            #expect(stmt.int64(4) == Int64(cells.count), "n counts the record's cells")
            #expect(stmt.int64(3) == cells.values.map(\.sequence).max(), "a record's seq is its newest cell's")
            for (column, cell) in cells.sorted(by: { $0.key < $1.key }) {
                let fields: [CellValue] = [stmt.value(0), stmt.value(1), .text(column), cell.value.value, cell.version.hlcValue, cell.version.nodeValue,
                                           .integer(cell.sequence), cell.device.map(CellValue.text) ?? .null]
                lines.append(fields.map(\.description).joined(separator: "|"))
            }
        }
        return lines
    }

    /// What a store moved from the per-cell layout must show: every cell with its value, version,
    /// sequence number and device; the links of its reference and key columns; and a bootstrap that
    /// sends every cell once, in pages that end between records.
    func checkCellsMigrated(_ store: ServerStore, before: [String]) throws {
        #expect(before.count > 200, "the fixture is what it says")
        let after = try store.reader.withConnection { try Self.recordCells($0) }
        #expect(after == before, "every cell, every field")
        #expect(try store.inspection.counts()["cells"] == Int64(before.count))

        var expectedLinks = Set<String>()
        for line in before {
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            if store.links.isLinked(table: f[0], column: f[2]), f[3] != CellValue.null.description { expectedLinks.insert("\(f[0])|\(f[1])|\(f[2])|\(f[3])") }
        }
        #expect(expectedLinks.count > 20, "the fixture has references")
        let links = try store.reader.withConnection { try $0.query("SELECT tbl, row_id, col, value FROM row_links") }
            .map { $0.map(\.description).joined(separator: "|") }
        #expect(Set(links) == expectedLinks)
        #expect(links.count == expectedLinks.count)
        let visits = before.filter { $0.hasPrefix("visits|") && $0.contains("|case_id|\(Self.caseID)|") }.map { $0.split(separator: "|")[1] }.map(String.init)
        #expect(!visits.isEmpty)
        #expect(try store.reader.withConnection { try Records($0, store: store).rows(of: "visits", whose: "case_id", is: Self.caseID) } == visits.sorted())

        // A fresh device's bootstrap, in small pages: every cell once, with its version.
        var pulled: [String] = []
        var cursor: Int64 = 0
        var floor: Int64 = 0
        var pages = 0
        while true {
            let page = try store.pull(since: cursor, floor: floor, limit: 7)
            for row in page.rows {
                for cell in row.cells { pulled.append("\(row.table)|\(row.row)|\(cell.column)|\(cell.value)|\(cell.version.hlcValue)|\(cell.version.nodeValue)") }
            }
            cursor = page.cursor
            floor = page.floor ?? cursor
            pages += 1
            if !page.more { break }
        }
        #expect(pages > 10, "pages of seven cells")
        let expected = before.map { $0.split(separator: "|", omittingEmptySubsequences: false).prefix(6).joined(separator: "|") }
        #expect(pulled.sorted() == expected.sorted())
    }

    @Test("a store with one history row per cell opens with every change in its history, and retries still answer")
    func oldSQLiteLayoutMigrates() async throws {
        let (directory, path) = try Self.dataDirectory(from: Self.oldStoreDump, label: "old-store")
        let before: [String], cellsBefore: [String]
        do {
            let raw = try SQLiteConnection(path: path)
            before = try Self.oldChanges(raw, order: "rowid")
            cellsBefore = try Self.oldCells(raw)
        }
        #expect(before.count == 229, "the fixture is what it says")

        let store = try ServerStore(directory: directory, dataModel: try shippedDataModel())
        try checkCellsMigrated(store, before: cellsBefore)
        try checkMigrated(store, before: before)
        let raw = try SQLiteConnection(path: path)
        #expect(try raw.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'changes'") == .integer(0), "the old table is gone")
        #expect(try raw.scalar("SELECT count(*) FROM sqlite_master WHERE name LIKE 'cells%'") == .integer(0), "cells and its indexes are gone")

        // Opening it again changes nothing more.
        let cellsNow = try Self.recordCells(raw)
        let again = try ServerStore(directory: directory, dataModel: try shippedDataModel())
        #expect(try Self.newChanges(try SQLiteConnection(path: path)) == before)
        #expect(try Self.recordCells(try SQLiteConnection(path: path)) == cellsNow)
        #expect(try again.inspection.counts()["changes"] == 229)
    }

    /// A store made by the release before decision 0020 (`4dba2b8`): history per row change, the
    /// current state still one `cells` row per cell. `Tests/Fixtures/store-per-cell-state.sql` is the
    /// `sqlite3 .dump` of that release's store after the README walkthrough (a conflict on the status,
    /// a note written and deleted, a real and a NULL written by the office); the steps are in
    /// `Tests/Fixtures/README.md`.
    static let perCellStateDump = repositoryRoot.appendingPathComponent("Tests/Fixtures/store-per-cell-state.sql").path

    @Test("a store of the previous release, current state per cell, opens with one record per row and serves a new device")
    func perCellStateMigrates() async throws {
        let (directory, path) = try Self.dataDirectory(from: Self.perCellStateDump, label: "per-cell-state")
        let cellsBefore: [String], historyBefore: [String]
        do {
            let raw = try SQLiteConnection(path: path)
            cellsBefore = try Self.oldCells(raw)
            historyBefore = try Self.newChanges(raw)
            #expect(try raw.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'cells_by_reference'") == .integer(1), "the fixture is what it says")
        }
        let server = try await TestServer.start(directory: directory)
        try checkCellsMigrated(server.store, before: cellsBefore)
        #expect(try server.store.reader.withConnection { try Self.newChanges($0) } == historyBefore, "the history is untouched")
        let raw = try SQLiteConnection(path: path)
        #expect(try raw.scalar("SELECT count(*) FROM sqlite_master WHERE name LIKE 'cells%'") == .integer(0), "cells and its indexes are gone")
        #expect(try raw.scalar("SELECT count(*) FROM meta WHERE key = 'reference_index'") == .integer(0))

        // A new office desk downloads it all: the walkthrough's outcome, the note deleted.
        let desk = try server.replica("new-desk")
        let report = try await desk.sync()
        #expect(report.pulled.cellsApplied > 100)
        #expect(try await desk.query("SELECT count(*) FROM cases").rows == [[.integer(5)]])
        #expect(try await desk.query("SELECT next_contact_due FROM cases WHERE id = ?", [.text(Self.caseID)]).rows == [[.null]])
        #expect(try await desk.query("SELECT hours_per_week FROM care_relations WHERE id = '70000000-0000-4000-8000-000000000001'").rows
                == [[.real(12.5)]])
        #expect(try await desk.query("SELECT count(*) FROM notes WHERE id = 'd0000000-0000-4000-8000-0000000000f1'").rows == [[.integer(0)]])
        let status = try #require(try server.store.inspection.cell(table: "cases", row: Self.caseID, column: "status")?.value)
        #expect(try await desk.query("SELECT status FROM cases WHERE id = ?", [.text(Self.caseID)]).rows == [[status]])
        await server.stop()
    }

    @Test("a backup from the previous release restored into a running store gets the new history")
    func oldBackupRestoresIntoTheNewLayout() async throws {
        let backup = try temporaryDirectory("old-backup") + "/backup.sqlite"
        let before: [String]
        do {
            let raw = try SQLiteConnection(path: backup)
            try raw.execute(try String(contentsOfFile: Self.oldStoreDump, encoding: .utf8))
            before = try Self.oldChanges(raw, order: "rowid")
        }
        let store = try ServerStore(directory: try temporaryDirectory("restore-target"), dataModel: try shippedDataModel())
        _ = try store.backups.restore(from: backup, actor: "test")
        #expect(try store.reader.withConnection { try Self.newChanges($0) } == before)
        #expect(try store.history(table: "cases", row: Self.caseID).contains { $0.value == .text("levering") && $0.status == "conflict" })
    }

    @Test("on PostgreSQL, a history and a current state kept per cell move to one entry per row change and one record per row")
    func oldPostgresLayoutMigrates() async throws {
        let location = try TestPostgres.freshDatabase("old_history")
        let raw = try SQLiteConnection(path: try temporaryDirectory("old-store-pg") + "/dump.sqlite")
        try raw.execute(try String(contentsOfFile: Self.oldStoreDump, encoding: .utf8))
        let before = try Self.oldChanges(raw, order: "rowid")
        let cellsBefore = try Self.oldCells(raw)
        do {
            // The previous release's table, filled with the fixture's changes in the same order.
            let postgres = try PostgresStoreConnection(location)
            try postgres.execute("""
                CREATE TABLE changes (
                    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                    change_id TEXT COLLATE "C" NOT NULL UNIQUE,
                    tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL, col TEXT COLLATE "C" NOT NULL,
                    value BYTEA, hlc BIGINT NOT NULL, node BIGINT NOT NULL,
                    base_hlc BIGINT, base_node BIGINT,
                    device TEXT, received_at TEXT NOT NULL,
                    status TEXT NOT NULL, won BIGINT, conflict_id BIGINT
                )
                """)
            for row in try raw.query("""
                SELECT change_id, tbl, row_id, col, value, hlc, node, base_hlc, base_node, device, received_at, status, won, conflict_id
                FROM changes ORDER BY rowid
                """) {
                try postgres.run("""
                    INSERT INTO changes (change_id, tbl, row_id, col, value, hlc, node, base_hlc, base_node, device, received_at, status, won, conflict_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, row)
            }
            #expect(try Self.oldChanges(postgres, order: "id") == before, "the same changes on PostgreSQL")
            // The previous release's current state, with the fixture's cells.
            try postgres.execute("""
                CREATE TABLE cells (
                    tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL, col TEXT COLLATE "C" NOT NULL,
                    value BYTEA, hlc BIGINT NOT NULL, node BIGINT NOT NULL,
                    seq BIGINT NOT NULL, device TEXT,
                    PRIMARY KEY (tbl, row_id, col)
                );
                CREATE INDEX cells_by_seq ON cells(seq);
                """)
            for row in try raw.query("SELECT tbl, row_id, col, value, hlc, node, seq, device FROM cells") {
                try postgres.run("INSERT INTO cells (tbl, row_id, col, value, hlc, node, seq, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
            }
            try postgres.execute(#"CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA)"#)
            try postgres.run("INSERT INTO meta (key, value) VALUES ('seq', ?)", [.integer(231)])
            #expect(try Self.oldCells(postgres) == cellsBefore, "the same cells on PostgreSQL")
        }
        let store = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        try checkCellsMigrated(store, before: cellsBefore)
        try checkMigrated(store, before: before, wholeStore: false)
    }

    /// What a migrated store must show: every change, in order, grouped per row; the marks; the
    /// history of a record as before; and a retried change answering with its first result.
    /// `wholeStore`: the fixture's devices and cells are there too (not in the PostgreSQL test, which
    /// moves only the history).
    func checkMigrated(_ store: ServerStore, before: [String], wholeStore: Bool = true) throws {
        let after = try store.reader.withConnection { try Self.newChanges($0) }
        #expect(after == before, "every change, every field, in arrival order")
        let counts = try store.inspection.counts()
        #expect(counts["changes"] == 229)
        #expect((counts["history"] ?? 0) < 229, "entries group a push's changes per row")

        // The marks: the greatest counter of each replica node, for the ids of that form.
        let marks = try store.reader.withConnection { try $0.query("SELECT node, counter FROM change_marks ORDER BY node") }
        var expected: [String: Int64] = [:]
        for line in before {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            let id = fields[0].split(separator: "-")
            guard id.count == 2, let node = NodeID(String(id[0])), String(node.rawValue) == fields[6], let counter = Int64(id[1]) else { continue }
            expected[String(fields[6])] = max(expected[String(fields[6])] ?? 0, counter)
        }
        #expect(expected.count == 2, "the laptop's and the office desk's ids")
        #expect(Dictionary(uniqueKeysWithValues: marks.map { ($0[0].description, $0[1].int64 ?? -1) }) == expected)

        // The history of the case reads as it did (the old query: ordered by version).
        let history = try store.history(table: "cases", row: Self.caseID)
        #expect(history.count == before.filter { $0.split(separator: "|", omittingEmptySubsequences: false)[2] == Self.caseID }.count)
        #expect(history.map(\.version) == history.map(\.version).sorted())
        #expect(history.contains { $0.column == "status" && $0.value == .text("levering") && $0.status == "conflict"
            && (!wholeStore || $0.deviceName == "office-anne") })
        #expect(history.last { $0.column == "next_contact_due" }?.value == .null, "a NULL written is history too")

        // A retry of a change from before the migration answers with its first result and stores nothing.
        let fields = try #require(before.last { $0.contains("|hours_per_week|") }?.split(separator: "|", omittingEmptySubsequences: false).map(String.init))
        let change = Change(id: fields[0], table: fields[1], row: fields[2], column: fields[3], value: .real(12.5),
                            version: try #require(CellVersion(hlc: .integer(Int64(fields[5])!), node: .integer(Int64(fields[6])!))),
                            base: CellVersion(hlc: .integer(Int64(fields[7])!), node: .integer(Int64(fields[8])!)))
        let retried = try store.push([change], device: fields[9]).results
        #expect(retried == [ChangeResult(id: change.id, status: .applied, won: true)])
        var reused = change
        reused.value = .real(13)
        reused.version.hlc += 1
        #expect(try store.push([reused], device: fields[9]).results.first?.code == .changeIDReused)
        #expect(try store.inspection.counts()["changes"] == 229, "nothing stored twice")
        if wholeStore {
            #expect(try store.inspection.cell(table: "care_relations", row: fields[2], column: "hours_per_week")?.value == .real(12.5))
        }
    }

    @Test("history entries round-trip every kind of value and id, and damaged bytes or text are an error")
    func historyTextRoundTrips() throws {
        let node = try #require(NodeID(rawValue: 0x1a3f_0011_2233_abcd))
        let changes = [
            RecordedChange(id: "\(node)-000000000001", column: "name", value: .text("Zeynep \"Z\" Öztürk\n"), version: CellVersion(hlc: 1 << 40, node: node),
                           base: nil, status: .applied, won: true, conflict: nil),
            RecordedChange(id: "demo-7", column: "hours_per_week", value: .real(12.0), version: CellVersion(hlc: (1 << 40) + 1, node: node),
                           base: CellVersion(hlc: 5, node: node), status: .conflict, won: false, conflict: 42),
            RecordedChange(id: "x", column: "score", value: .integer(-3), version: CellVersion(hlc: (1 << 40) + 2, node: node),
                           base: nil, status: .superseded, won: nil, conflict: nil),
            RecordedChange(id: "y", column: "since", value: .null, version: CellVersion(hlc: (1 << 40) + 3, node: node),
                           base: nil, status: .applied, won: true, conflict: nil),
        ]
        let other = try #require(NodeID(rawValue: 77))
        let more = changes + [
            // A replica's own id with the counter's zeros kept, one of another node, an id of digits only.
            RecordedChange(id: "\(node)-000000000042", column: "a", value: .integer(.min), version: CellVersion(hlc: 3, node: node),
                           base: CellVersion(hlc: .max, node: other), status: .rejected, won: false, conflict: .max),
            RecordedChange(id: "\(other)-7", column: "b", value: .real(-0.0), version: CellVersion(hlc: 2, node: node),
                           base: nil, status: .applied, won: nil, conflict: -1),
            RecordedChange(id: "\(node)-", column: "c", value: .text(""), version: CellVersion(hlc: 1, node: other),
                           base: CellVersion(hlc: 0, node: other), status: .applied, won: true, conflict: 0),
            RecordedChange(id: "\(node)-123456789012345678", column: "d", value: .null, version: CellVersion(hlc: 1, node: node),
                           base: nil, status: .superseded, won: nil, conflict: nil),
        ]
        // Some columns numbered, the others spelled out (decision 0034).
        let numbers = Numbering(["_deleted", "b", "status", "d"]), names = NumberedNames.fixed(numbers)
        for entry in [changes, more, []] {
            let bytes = HistoryCoding.encode(entry, columns: numbers)
            #expect(try HistoryCoding.decode(bytes, columns: names) == entry)
            #expect(try HistoryCoding.decode(HistoryCoding.encode(entry, columns: .none), columns: .fixed(.none)) == entry)
            for length in 0..<bytes.count {
                #expect(throws: StoreError.self, "cut at \(length)") { try HistoryCoding.decode(Array(bytes.prefix(length)), columns: names) }
            }
            #expect(throws: StoreError.self) { try HistoryCoding.decode(bytes + [0], columns: names) }
        }
        #expect(throws: StoreError.self, "a number the store does not know") {
            try HistoryCoding.decode(HistoryCoding.encode(more, columns: numbers), columns: .fixed(Numbering(["_deleted"])))
        }
        // A replica's own id takes three bytes, not thirty (in capitals it is not that form, so kept as text).
        var asText = changes[0]
        asText.id = asText.id.uppercased()
        #expect(HistoryCoding.encode([changes[0]], columns: numbers).count + 28 == HistoryCoding.encode([asText], columns: numbers).count)
        #expect(try HistoryCoding.decode(HistoryCoding.encode([asText], columns: numbers), columns: names) == [asText])
        // The JSON text of releases before decision 0031 is still read.
        let json = #"[["demo-7","hours_per_week",12.0,1099511627777,1891230442107153357,5,1891230442107153357,"conflict",0,42]]"#
        #expect(try HistoryCoding.decode(Array(json.utf8), columns: names) == [changes[1]])
        for damaged in ["[", "[[\"a\",\"b\",1,2]]", "[[\"a\",\"b\",1,2,3,null,null,\"eaten\",1,null]]", "{}"] {
            #expect(throws: StoreError.self, "\(damaged)") { try HistoryCoding.decode(Array(damaged.utf8), columns: names) }
        }
    }

    @Test("only a replica's own ids above its node's mark skip the lookup")
    func changeMarksRecogniseReplicaIDs() throws {
        let node = try #require(NodeID(rawValue: 0x0558_a57e_9802_8f56))
        let other = try #require(NodeID(rawValue: 0x6359_619b_c664_ff8f))
        let marks = ChangeMarks()
        func change(_ id: String, _ version: NodeID) -> Change {
            Change(id: id, table: "cases", row: "r", column: "status", value: .null, version: CellVersion(hlc: 1, node: version), base: nil)
        }
        #expect(marks.counter(of: change("\(node)-000000000042", node)) == 42)
        #expect(marks.counter(of: change("\(node)-000000000042", other)) == nil, "another node's id")
        #expect(marks.counter(of: change("demo-42", node)) == nil)
        #expect(marks.counter(of: change("\(node)-", node)) == nil)
        #expect(marks.counter(of: change("\(node)-12a", node)) == nil)
        #expect(marks.counter(of: change("\(node)-".uppercased() + "7", node)) == nil, "hex in capitals is not the form a replica writes")
        #expect(ChangeMarks.replicaCounter(id: "\(node)-000000000042", node: node)! == (42, 12), "the counter and its digits")
        #expect(marks.counter(of: change("\(node)-" + String(repeating: "9", count: 19), node)) == nil, "too long to be a counter")
    }
}
