import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// History entries name a registered device by its number and keep their arrival in milliseconds
/// (decision 0035); stores of the previous release move on open.
@Suite struct HistoryWriterTests {
    static let caseID = RecordFormatTests.caseID

    /// Per writer in the history of the previous release's layout: `id count first last`.
    static func writersBefore(_ raw: SQLiteConnection) throws -> [String] {
        try raw.query("SELECT device, count(*), min(received_at), max(received_at) FROM history GROUP BY device ORDER BY device")
            .map { $0.map(\.description).joined(separator: " ") }
    }

    /// The same, read from the layout of decision 0035.
    static func writersAfter(_ connection: any StoreConnection) throws -> [String] {
        try connection.query("""
            SELECT coalesce(d.id, h.device), count(*), min(h.received_ms), max(h.received_ms)
            FROM history h LEFT JOIN devices d ON d.no = h.device_no GROUP BY 1 ORDER BY 1
            """).map { row in
            [row[0].description, row[1].description, iso8601(row[2].int64 ?? 0), iso8601(row[3].int64 ?? 0)].joined(separator: " ")
        }
    }

    @Test("a store of the previous release keeps every entry's writer and time, by number and in milliseconds")
    func historyMovesToNumbers() async throws {
        let (directory, path) = try StoreLayoutTests.dataDirectory(from: ColumnNumberTests.binaryRecordsDump, label: "history-writers")
        let raw = try SQLiteConnection(path: path)
        let before = try StoreLayoutTests.newChanges(raw), writers = try Self.writersBefore(raw)
        #expect(writers.count == 3 && writers.contains { $0.hasPrefix("demo ") }, "the fixture is what it says: \(writers)")
        let server = try await TestServer.start(directory: directory)
        #expect(try server.store.reader.withConnection { try StoreLayoutTests.newChanges($0) } == before, "every change, writer and time")
        #expect(try server.store.reader.withConnection { try Self.writersAfter($0) } == writers)
        // Registered devices by number only; the demo loader by name.
        #expect(try raw.scalar("SELECT count(*) FROM history WHERE (device_no IS NULL) = (device IS NULL)") == .integer(0))
        #expect(try raw.query("SELECT DISTINCT device FROM history WHERE device IS NOT NULL") == [[.text("demo")]])
        #expect(try raw.scalar("SELECT count(DISTINCT device_no) FROM history") == .integer(2))
        #expect(try raw.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'history_by_row'") == .integer(1), "its index is back")

        // The history of the case names the office desk for its conflicting write, at the fixture's time.
        let history = try server.store.history(table: "cases", row: Self.caseID)
        let levering = try #require(history.first { $0.value == .text("levering") })
        #expect(levering.deviceName == "office-anne" && levering.status == "conflict")
        #expect(before.contains { $0.contains("|levering|") && $0.contains("|\(levering.receivedAt)|") })

        // A push after the move: by the desk's number, after the old entries.
        let desk = try server.replica("desk-3")
        _ = try await desk.sync()
        try await desk.execute("UPDATE cases SET status = 'evaluatie' WHERE id = ?", [.text(Self.caseID)])
        #expect(try await desk.sync().pushed.applied == 1)
        let newest = try raw.query("SELECT h.device_no, h.device, d.name FROM history h JOIN devices d ON d.no = h.device_no ORDER BY h.id DESC LIMIT 1")
        #expect(newest.first?[1] == .null && newest.first?[2] == .text("desk-3"))
        #expect(try server.store.history(table: "cases", row: Self.caseID).last?.deviceName == "desk-3")
        await server.stop()
    }

    @Test("on PostgreSQL, entries by device id and ISO time move to numbers and milliseconds, and new entries follow them")
    func postgresHistoryMoves() throws {
        let (_, path) = try StoreLayoutTests.dataDirectory(from: ColumnNumberTests.binaryRecordsDump, label: "history-writers-pg")
        let raw = try SQLiteConnection(path: path)
        let before = try StoreLayoutTests.newChanges(raw), writers = try Self.writersBefore(raw)
        let maxID = try #require(try raw.scalar("SELECT max(id) FROM history")?.int64)
        let location = try TestPostgres.freshDatabase("history_writers")
        do {
            // The previous release's history table, with the fixture's devices and entries.
            let postgres = try PostgresStoreConnection(location)
            try postgres.execute("""
                CREATE TABLE devices (
                    id TEXT COLLATE "C" PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
                    created_at TEXT NOT NULL, revoked_at TEXT, user_id TEXT COLLATE "C", lost_at TEXT, resync BIGINT NOT NULL DEFAULT 0
                );
                CREATE TABLE history (
                    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                    tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL,
                    device TEXT, received_at TEXT NOT NULL,
                    n BIGINT NOT NULL, changes BYTEA NOT NULL
                );
                CREATE INDEX history_by_row ON history(tbl, row_id);
                """)
            for row in try raw.query("SELECT id, name, token_hash, created_at, revoked_at, user_id, lost_at FROM devices") {
                try postgres.run("INSERT INTO devices (id, name, token_hash, created_at, revoked_at, user_id, lost_at) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            }
            for row in try raw.query("SELECT id, tbl, row_id, device, received_at, n FROM history ORDER BY id") {
                let changes = try #require(try raw.bytes("SELECT changes FROM history WHERE id = ?", [row[0]]))
                try postgres.run("INSERT INTO history (id, tbl, row_id, device, received_at, n, changes) VALUES (?, ?, ?, ?, ?, ?, ?)", row, bytes: changes)
            }
        }
        let store = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        #expect(try store.reader.withConnection { try StoreLayoutTests.newChanges($0) } == before, "every change, writer and time")
        #expect(try store.reader.withConnection { try Self.writersAfter($0) } == writers)
        // A push by the office (by name) and one by a registered device (by number) go on after the old ids.
        let node = NodeID.random()
        _ = try store.push([ColumnNumberTests.change(Self.caseID, "status", "evaluatie", counter: 1, node: node)], device: "office")
        let laptop = try #require(try store.reader.withConnection { try $0.scalar("SELECT id FROM devices WHERE name = 'laptop-fatima'")?.string })
        _ = try store.push([ColumnNumberTests.change(Self.caseID, "question", "Hulp bij het huishouden", counter: 2, node: node)], device: laptop)
        let newest = try store.reader.withConnection {
            try $0.query("SELECT h.id, h.device_no, h.device FROM history h WHERE h.id > ? ORDER BY h.id", [.integer(maxID)])
        }
        #expect(newest.count == 2)
        #expect(newest.first?[2] == .text("office") && newest.first?[1] == .null)
        #expect(newest.last?[2] == .null && newest.last?[1].int64 != nil)
        // Opening again changes nothing.
        let again = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        #expect(try again.reader.withConnection { try StoreLayoutTests.newChanges($0) }.prefix(before.count) == before[...])
    }
}
