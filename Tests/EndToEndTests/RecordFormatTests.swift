import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// A row's record and history entries in their binary forms (decision 0031): every value and version
/// survives, damage is an error, and stores whose records and history are JSON text (the release
/// before) move to them when opened.
@Suite("Record format")
struct RecordFormatTests {
    static let jsonRecordsDump = repositoryRoot.appendingPathComponent("Tests/Fixtures/store-json-records.sql").path
    static let caseID = "c0000000-0000-4000-8000-000000000005"

    static func sampleCells() throws -> RowCells {
        let a = try #require(NodeID(rawValue: 0x1a3f_0011_2233_abcd)), b = try #require(NodeID(rawValue: UInt64(Int64.max)))
        let c = try #require(NodeID(rawValue: 1))
        func cell(_ value: CellValue, _ hlc: UInt64, _ node: NodeID, _ sequence: Int64, _ device: String?) -> StoredCell {
            StoredCell(value: VersionedValue(value: value, version: CellVersion(hlc: hlc, node: node)), device: device, sequence: sequence)
        }
        return [
            "name": cell(.text("Zeynep \"Z\" Öztürk\n"), 1 << 62, a, 7, "laptop-fatima"),
            "empty": cell(.text(""), (1 << 62) - 5, a, 8, "laptop-fatima"),  // an older clock at a newer sequence
            "long": cell(.text(String(repeating: "mantelzorger ", count: 40)), 3, b, 1 << 40, nil),
            "min": cell(.integer(.min), .max, c, 9, "office-anne"),
            "max": cell(.integer(.max), 0, c, 10, "office-anne"),
            "negative": cell(.integer(-3), 12, a, 11, nil),
            "hours": cell(.real(12.5), 13, b, 12, "demo"),
            "tiny": cell(.real(-.leastNonzeroMagnitude), 14, b, 13, "demo"),
            "infinite": cell(.real(.infinity), 15, b, 14, "demo"),
            "since": cell(.null, 16, a, 15, "laptop-fatima"),
        ]
    }

    /// Numbers for some of the sample's columns: the others are spelled out, as a column outside the model is.
    static let someNumbers = Numbering(["_deleted", "name", "long", "hours", "since"])
    /// Numbers for two of the sample's writers; `demo` is spelled out, as a writer that is no device is.
    static let someDevices = Numbering([(name: "laptop-fatima", number: 1), (name: "office-anne", number: 7)])

    @Test("a record round-trips every kind of value, clock, node, sequence and device")
    func recordsRoundTrip() throws {
        let cells = try Self.sampleCells()
        let bytes = RowCoding.encode(cells, columns: Self.someNumbers, devices: Self.someDevices)
        #expect(try RowCoding.decode(bytes, columns: .fixed(Self.someNumbers), devices: .fixed(Self.someDevices)) == cells)
        #expect(try RowCoding.decode(RowCoding.encode(cells, columns: .none, devices: .none), columns: .fixed(.none), devices: .fixed(.none)) == cells)
        var order: [String] = []
        try bytes.withUnsafeBytes { try RowCoding.forEachCell(in: $0, columns: .fixed(Self.someNumbers), devices: .fixed(Self.someDevices)) { column, _ in order.append(column) } }
        #expect(order == cells.sorted { $0.value.sequence < $1.value.sequence }.map(\.key), "cells come in sequence order")
        #expect(try RowCoding.decode(RowCoding.encode([:], columns: .none, devices: .none), columns: .fixed(.none), devices: .fixed(.none)) == [:])
        // A real case record is a fraction of its JSON text.
        let json = try #require(try Self.firstCaseRecord())
        let record = try JSONRowCoding.decode(json)
        #expect(try RowCoding.decode(RowCoding.encode(record, columns: .none, devices: .none), columns: .fixed(.none), devices: .fixed(.none)) == record)
        let size = RowCoding.encode(record, columns: .none, devices: .none).count
        #expect(size * 2 < json.utf8.count, "\(size) bytes against \(json.utf8.count)")
    }

    @Test("damaged bytes are an error, never fewer cells")
    func damagedRecordsAreErrors() throws {
        let names = NumberedNames.fixed(Self.someNumbers), devices = NumberedNames.fixed(Self.someDevices)
        let bytes = RowCoding.encode(try Self.sampleCells(), columns: Self.someNumbers, devices: Self.someDevices)
        for length in 0..<bytes.count {
            #expect(throws: StoreError.self, "cut at \(length)") { try RowCoding.decode(Array(bytes.prefix(length)), columns: names, devices: devices) }
        }
        #expect(throws: StoreError.self) { try RowCoding.decode(bytes + [0], columns: names, devices: devices) }
        var otherFormat = bytes
        otherFormat[0] = 1
        #expect(throws: StoreError.self) { try RowCoding.decode(otherFormat, columns: names, devices: devices) }
        #expect(throws: StoreError.self) { try RowCoding.decode(Array("[[\"demo\"]]".utf8), columns: names, devices: devices) }
        // Numbers the store does not know (fewer names than the writer had) are an error, not another column.
        #expect(throws: StoreError.self) { try RowCoding.decode(bytes, columns: .fixed(Numbering(["name"])), devices: devices) }
        // So are device numbers it does not know.
        #expect(throws: StoreError.self) { try RowCoding.decode(bytes, columns: names, devices: .fixed(Numbering([(name: "laptop-fatima", number: 1)]))) }
    }

    /// The first `cases` record of the fixture, as the previous release wrote it.
    static func firstCaseRecord() throws -> String? {
        let raw = try SQLiteConnection(path: try temporaryDirectory("json-records-read") + "/dump.sqlite")
        try raw.execute(try String(contentsOfFile: jsonRecordsDump, encoding: .utf8))
        return try raw.scalar("SELECT cells FROM records WHERE tbl = 'cases' AND row_id = ?", [.text(caseID)])?.string
    }

    /// Every cell of the fixture's JSON records as `StoreLayoutTests.recordCells` prints them.
    static func jsonRecordCells(_ connection: SQLiteConnection) throws -> [String] {
        var lines: [String] = []
        for record in try connection.query("SELECT tbl, row_id, cells FROM records ORDER BY tbl, row_id") {
            let cells = try JSONRowCoding.decode(record[2].string ?? "")
            for (column, cell) in cells.sorted(by: { $0.key < $1.key }) {
                let fields: [CellValue] = [record[0], record[1], .text(column), cell.value.value, cell.version.hlcValue, cell.version.nodeValue,
                                           .integer(cell.sequence), cell.device.map(CellValue.text) ?? .null]
                lines.append(fields.map(\.description).joined(separator: "|"))
            }
        }
        return lines
    }

    /// `Tests/Fixtures/store-json-records.sql`: the store of the release before decision 0031
    /// (`5d09325`) after the README walkthrough (steps in `Tests/Fixtures/README.md`).
    @Test("a store of the previous release, records as JSON text, opens with binary records and serves and takes changes")
    func jsonRecordsMigrate() async throws {
        let (directory, path) = try StoreLayoutTests.dataDirectory(from: Self.jsonRecordsDump, label: "json-records")
        let before: [String], historyBefore: [String], entries: Int64
        do {
            let raw = try SQLiteConnection(path: path)
            before = try Self.jsonRecordCells(raw)
            historyBefore = try StoreLayoutTests.newChanges(raw)
            entries = try raw.scalar("SELECT count(*) FROM history")?.int64 ?? 0
            #expect(before.count > 200 && historyBefore.count > 200, "the fixture is what it says")
            #expect(try raw.scalar("SELECT count(*) FROM records WHERE substr(cells, 1, 1) = '['") == .integer(43))
            #expect(try raw.scalar("SELECT count(*) FROM history WHERE substr(changes, 1, 1) = '['") == .integer(entries))
        }
        let server = try await TestServer.start(directory: directory)
        #expect(try server.store.reader.withConnection { try StoreLayoutTests.recordCells($0) } == before, "every cell, every field")
        #expect(try server.store.reader.withConnection { try StoreLayoutTests.newChanges($0) } == historyBefore, "every change, every field, in order")
        let raw = try SQLiteConnection(path: path)
        #expect(try raw.scalar("SELECT count(*) FROM records WHERE typeof(cells) = 'blob' AND hex(substr(cells, 1, 1)) = '03'") == .integer(43))
        #expect(try raw.scalar("SELECT count(*) FROM history WHERE typeof(changes) = 'blob' AND hex(substr(changes, 1, 1)) = '03'") == .integer(entries))
        #expect(try raw.scalar("SELECT value FROM meta WHERE key = 'record_format'") == .integer(2))
        #expect(try raw.scalar("SELECT value FROM meta WHERE key = 'history_format'") == .integer(2))
        #expect(try server.store.history(table: "cases", row: Self.caseID).contains { $0.value == .text("levering") && $0.status == "conflict" })

        // A new office desk downloads it all: the walkthrough's outcome, the note deleted.
        let desk = try server.replica("new-desk")
        #expect(try await desk.sync().pulled.cellsApplied > 100)
        #expect(try await desk.query("SELECT count(*) FROM cases").rows == [[.integer(5)]])
        #expect(try await desk.query("SELECT next_contact_due FROM cases WHERE id = ?", [.text(Self.caseID)]).rows == [[.null]])
        #expect(try await desk.query("SELECT hours_per_week FROM care_relations WHERE id = '70000000-0000-4000-8000-000000000001'").rows
                == [[.real(12.5)]])
        #expect(try await desk.query("SELECT count(*) FROM notes WHERE id = 'd0000000-0000-4000-8000-0000000000f1'").rows == [[.integer(0)]])
        #expect(try await desk.query("SELECT status FROM cases WHERE id = ?", [.text(Self.caseID)]).rows == [[.text("levering")]])

        // A change to a migrated row merges with its older cells, and another device gets it.
        try await desk.execute("UPDATE cases SET status = 'evaluatie' WHERE id = ?", [.text(Self.caseID)])
        #expect(try await desk.sync().pushed.applied == 1)
        #expect(try server.store.inspection.cell(table: "cases", row: Self.caseID, column: "status")?.value == .text("evaluatie"))
        #expect(try server.store.inspection.cell(table: "cases", row: Self.caseID, column: "next_contact_due")?.value == .null)
        let other = try server.replica("second-desk")
        _ = try await other.sync()
        #expect(try await other.query("SELECT status, next_contact_due FROM cases WHERE id = ?", [.text(Self.caseID)]).rows
                == [[.text("evaluatie"), .null]])
        await server.stop()
    }

    @Test("the move to the binary forms goes through a store in windows and leaves what is binary already")
    func rewriteGoesThroughInWindows() throws {
        let raw = try SQLiteConnection(path: try temporaryDirectory("json-windows") + "/store.sqlite")
        try raw.execute(try String(contentsOfFile: Self.jsonRecordsDump, encoding: .utf8))
        let before = try Self.jsonRecordCells(raw), historyBefore = try StoreLayoutTests.newChanges(raw)
        // One record in the binary form already, as after a crash between two windows it could not be (one
        // transaction), but as a record written by this release is: it must be left as it is.
        let first = try #require(try raw.query("SELECT tbl, row_id, cells FROM records ORDER BY tbl, row_id LIMIT 1").first)
        let binary = RowCoding.encode(try JSONRowCoding.decode(first[2].string ?? ""), columns: .none, devices: .none)
        try raw.run("UPDATE records SET cells = ?3 WHERE tbl = ?1 AND row_id = ?2", [first[0], first[1]], bytes: binary)
        #expect(raw.changes == 1)
        var converted = 0
        try StoreSchema.rewriteJSON(table: "records", column: "cells", key: ["tbl", "row_id"], from: [.text(""), .text("")], window: 7, raw) { json in
            converted += 1
            return RowCoding.encode(try JSONRowCoding.decode(String(decoding: json, as: UTF8.self)), columns: .none, devices: .none)
        }
        try StoreSchema.rewriteJSON(table: "history", column: "changes", key: ["id"], from: [.integer(.min)], window: 7, raw) { json in
            HistoryCoding.encode(try HistoryCoding.decode(json, columns: .fixed(.none)), columns: .none)
        }
        #expect(converted == 42, "every JSON record once, the binary one left")
        #expect(try StoreLayoutTests.recordCells(raw) == before)
        #expect(try StoreLayoutTests.newChanges(raw) == historyBefore)
        #expect(try raw.scalar("SELECT count(*) FROM records WHERE hex(substr(cells, 1, 1)) <> '03'") == .integer(0))
        #expect(try raw.scalar("SELECT count(*) FROM history WHERE hex(substr(changes, 1, 1)) <> '03'") == .integer(0))
    }

    @Test("a backup made by the previous release, restored into a running store, serves its records and history in the new form")
    func jsonRecordsBackupRestores() async throws {
        let backup = try temporaryDirectory("json-backup") + "/backup.sqlite"
        let before: [String], historyBefore: [String]
        do {
            let raw = try SQLiteConnection(path: backup)
            try raw.execute(try String(contentsOfFile: Self.jsonRecordsDump, encoding: .utf8))
            before = try Self.jsonRecordCells(raw)
            historyBefore = try StoreLayoutTests.newChanges(raw)
        }
        let server = try await TestServer.start()
        _ = try await onThread { try server.store.backups.restore(from: backup, actor: "test") }
        #expect(try server.store.reader.withConnection { try StoreLayoutTests.recordCells($0) } == before)
        #expect(try server.store.reader.withConnection { try StoreLayoutTests.newChanges($0) } == historyBefore)
        let desk = try server.replica("after-restore")
        _ = try await desk.sync()
        #expect(try await desk.query("SELECT status FROM cases WHERE id = ?", [.text(Self.caseID)]).rows == [[.text("levering")]])
        await server.stop()
    }

    @Test("on PostgreSQL, a records column of JSON text becomes bytea with every record in the binary form")
    func postgresJSONRecordsMigrate() async throws {
        let location = try TestPostgres.freshDatabase("json_records")
        let raw = try SQLiteConnection(path: try temporaryDirectory("json-records-pg") + "/dump.sqlite")
        try raw.execute(try String(contentsOfFile: Self.jsonRecordsDump, encoding: .utf8))
        let before = try Self.jsonRecordCells(raw)
        let historyBefore = try StoreLayoutTests.newChanges(raw)
        do {
            // The previous release's table, with the fixture's records.
            let postgres = try PostgresStoreConnection(location)
            try postgres.execute("""
                CREATE TABLE records (
                    tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL,
                    seq BIGINT NOT NULL, n BIGINT NOT NULL, cells TEXT NOT NULL,
                    PRIMARY KEY (tbl, row_id)
                );
                CREATE INDEX records_by_seq ON records(seq);
                """)
            for row in try raw.query("SELECT tbl, row_id, seq, n, cells FROM records") {
                try postgres.run("INSERT INTO records (tbl, row_id, seq, n, cells) VALUES (?, ?, ?, ?, ?)", row)
            }
            try postgres.execute("""
                CREATE TABLE history (
                    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                    tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL,
                    device TEXT, received_at TEXT NOT NULL,
                    n BIGINT NOT NULL, changes TEXT NOT NULL
                );
                CREATE INDEX history_by_row ON history(tbl, row_id);
                """)
            for row in try raw.query("SELECT id, tbl, row_id, device, received_at, n, changes FROM history ORDER BY id") {
                try postgres.run("INSERT INTO history (id, tbl, row_id, device, received_at, n, changes) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            }
        }
        let store = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        #expect(try store.reader.withConnection { try StoreLayoutTests.recordCells($0) } == before, "every cell, every field")
        #expect(try store.reader.withConnection { try StoreLayoutTests.newChanges($0) } == historyBefore, "every change, every field, in order")
        for (table, column) in [("records", "cells"), ("history", "changes")] {
            #expect(try store.reader.withConnection {
                try $0.scalar("SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?",
                              [.text(table), .text(column)])
            } == .text("bytea"))
        }
        #expect(try store.history(table: "cases", row: Self.caseID).contains { $0.value == .text("levering") && $0.status == "conflict" })
        #expect(try store.inspection.cell(table: "care_relations", row: "70000000-0000-4000-8000-000000000001", column: "hours_per_week")?.value
                == .real(12.5))
        // Opening again changes nothing.
        let again = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        #expect(try again.reader.withConnection { try StoreLayoutTests.recordCells($0) } == before)
        #expect(try again.reader.withConnection { try StoreLayoutTests.newChanges($0) } == historyBefore)
    }
}
