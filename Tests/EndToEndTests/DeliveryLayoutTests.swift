import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// Deliveries by device number and milliseconds (decision 0032): a store of the previous release, which
/// kept them by device id and ISO time, moves on open with every delivery's fields equal.
@Suite struct DeliveryLayoutTests {
    static let resident = "a0000000-0000-4000-8000-000000000005"

    /// Every delivery of the previous layout as one line: table, row, device id, times as the store wrote
    /// them, count, removal.
    static func oldDeliveries(_ connection: any StoreConnection) throws -> [String] {
        try connection.query("""
            SELECT tbl, row_id, device, first_at, last_at, times, removal_seq, removal_at FROM deliveries ORDER BY tbl, row_id, device
            """).map { $0.map(\.description).joined(separator: "|") }
    }

    /// Every delivery of the new layout as the same line: the device's id by its number, the times in ISO form again.
    static func newDeliveries(_ connection: any StoreConnection) throws -> [String] {
        try connection.query("""
            SELECT x.tbl, x.row_id, d.id, x.first_ms, x.last_ms, x.times, x.removal_seq, x.removal_ms
            FROM deliveries x JOIN devices d ON d.no = x.device_no ORDER BY x.tbl, x.row_id, d.id
            """).map { row in
            func time(_ value: CellValue) -> CellValue { value.int64.map { CellValue.text(iso8601($0)) } ?? .null }
            let fields: [CellValue] = [row[0], row[1], row[2], time(row[3]), time(row[4]), row[5], row[6], time(row[7])]
            return fields.map(\.description).joined(separator: "|")
        }
    }

    /// The fixture with one delivery marked as a removal the device has yet to confirm, so the move of those columns is seen too.
    static func fixture(label: String) throws -> (directory: String, path: String, before: [String]) {
        let (directory, path) = try StoreLayoutTests.dataDirectory(from: RecordFormatTests.jsonRecordsDump, label: label)
        let raw = try SQLiteConnection(path: path)
        try raw.execute("""
            UPDATE deliveries SET removal_seq = 90, removal_at = '2026-12-02T08:01:02.345Z'
            WHERE tbl = 'notes' AND row_id = (SELECT min(row_id) FROM deliveries WHERE tbl = 'notes')
            """)
        let before = try oldDeliveries(raw)
        #expect(before.count == 67 && before.contains { $0.hasSuffix("|90|2026-12-02T08:01:02.345Z") }, "the fixture is what it says")
        return (directory, path, before)
    }

    @Test("a store of the previous release keeps every delivery, by device number and in milliseconds, and the audit reads them as before")
    func deliveriesMoveToNumbers() async throws {
        let (directory, path, before) = try Self.fixture(label: "deliveries")
        let server = try await TestServer.start(directory: directory)
        #expect(try server.store.reader.withConnection { try Self.newDeliveries($0) } == before, "every delivery, every field")
        let raw = try SQLiteConnection(path: path)
        #expect(try raw.query("SELECT name FROM pragma_table_info('deliveries') ORDER BY cid").map { $0[0] }
                == ["tbl", "row_id", "device_no", "first_ms", "last_ms", "times", "removal_seq", "removal_ms"].map(CellValue.text))
        #expect(try raw.scalar("SELECT count(DISTINCT no) = count(*) AND min(no) = 1 FROM devices") == .integer(1), "every device numbered once")

        // The audit's receipts: the fixture's own first and last times for the resident's case.
        let audit = try server.store.audit.resident(Self.resident)
        let oldCaseLines = before.filter { $0.hasPrefix("cases|c0000000-0000-4000-8000-000000000005|") }.map { $0.split(separator: "|") }
        #expect(!oldCaseLines.isEmpty)
        let caseReceipts = audit.receipts.filter { $0.table == "cases" }
        #expect(caseReceipts.count == oldCaseLines.count)
        #expect(Set(caseReceipts.map(\.first)) == Set(oldCaseLines.map { String($0[3]) }))
        #expect(Set(caseReceipts.map(\.last)) == Set(oldCaseLines.map { String($0[4]) }))

        // A device added now takes the next number, and what it is sent is noted under it.
        let desk = try server.replica("new-desk")
        _ = try await desk.sync()
        let (number, highest) = try server.store.reader.withConnection { connection in
            (try connection.scalar("SELECT no FROM devices WHERE name = 'new-desk'")?.int64, try connection.scalar("SELECT max(no) FROM devices WHERE name <> 'new-desk'")?.int64)
        }
        #expect(number != nil && number == highest.map { $0 + 1 })
        #expect(try server.store.reader.withConnection { try $0.scalar("SELECT count(*) FROM deliveries WHERE device_no = ?", [.integer(number ?? -1)]) }?.int64 ?? 0 > 40)
        await server.stop()
    }

    @Test("one batch of deliveries from several devices: each device's progress raised, rows noted, a removal after its delivery kept",
          arguments: [StoreDialect.sqlite, .postgresql])
    func aBatchOfDeliveries(dialect: StoreDialect) async throws {
        let model = try shippedDataModel()
        let store = try await onThread { () -> ServerStore in
            switch dialect {
            case .sqlite: return try ServerStore(directory: try temporaryDirectory("delivery-batch"), dataModel: model)
            case .postgresql: return try ServerStore(postgres: try TestPostgres.freshDatabase("delivery_batch"), dataModel: model)
            }
        }
        _ = try store.accounts.addUser(name: "fatima", role: .consultant, actor: "test")
        let first = try store.accounts.addDevice(name: "laptop 1", user: "fatima").device.id
        let second = try store.accounts.addDevice(name: "laptop 2", user: "fatima").device.id
        func page(cursor: Int64, rows: [String], evicted: [String] = []) -> PullResponse {
            PullResponse(cursor: cursor, more: false, rows: rows.map { FeedRow(table: "cases", row: $0, cells: []) }, conflicts: [],
                         evictions: evicted.map { RowReference(table: "cases", row: $0) }, serverTime: 0, schemaVersion: 1)
        }
        // Two pages of the first device in one batch (pipelined): the second tells it to delete a row the first sent.
        try FeedReader(store: store).record([
            Delivery(device: first, page: page(cursor: 10, rows: ["a", "b"]), since: 5, informed: (0, 10), confirmed: (0, 5)),
            Delivery(device: second, page: page(cursor: 12, rows: ["a"]), since: 0, informed: (0, 12)),
            Delivery(device: first, page: page(cursor: 14, rows: ["c"], evicted: ["a"]), since: 10, informed: (10, 14), confirmed: (5, 10)),
        ])
        let (devices, deliveries) = try store.reader.withConnection { connection in
            (try connection.query("SELECT name, informed_seq, confirmed_seq FROM devices ORDER BY name").map { $0.map(\.description).joined(separator: " ") },
             try connection.query("""
                SELECT d.name, x.row_id, x.times, x.removal_seq FROM deliveries x JOIN devices d ON d.no = x.device_no ORDER BY d.name, x.row_id
                """).map { $0.map(\.description).joined(separator: " ") })
        }
        #expect(devices.count == 2 && devices[0].hasPrefix("laptop 1 14 10") && devices[1].hasPrefix("laptop 2 12 "))
        #expect(deliveries == ["laptop 1 a 1 14", "laptop 1 b 1 ∅", "laptop 1 c 1 ∅", "laptop 2 a 1 ∅"], "a removal of a row sent earlier in the batch is kept")
    }

    /// The devices table of a release before decision 0032 (no numbers), on PostgreSQL, with the devices of `raw`.
    static func copyDevices(from raw: SQLiteConnection, to postgres: PostgresStoreConnection) throws {
        try postgres.execute("""
            CREATE TABLE devices (
                id TEXT COLLATE "C" PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
                created_at TEXT NOT NULL, revoked_at TEXT, user_id TEXT COLLATE "C", lost_at TEXT, resync BIGINT NOT NULL DEFAULT 0
            )
            """)
        for row in try raw.query("SELECT id, name, token_hash, created_at, revoked_at, user_id, lost_at FROM devices") {
            try postgres.run("INSERT INTO devices (id, name, token_hash, created_at, revoked_at, user_id, lost_at) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        }
    }

    @Test("on PostgreSQL, deliveries by device id and ISO time move to numbers and milliseconds, once")
    func postgresDeliveriesMove() throws {
        let (_, path, before) = try Self.fixture(label: "deliveries-pg")
        let raw = try SQLiteConnection(path: path)
        let location = try TestPostgres.freshDatabase("deliveries")
        do {
            // The previous release's tables, with the fixture's devices and deliveries.
            let postgres = try PostgresStoreConnection(location)
            try Self.copyDevices(from: raw, to: postgres)
            try postgres.execute("""
                CREATE TABLE deliveries (
                    tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL, device TEXT COLLATE "C" NOT NULL,
                    first_at TEXT NOT NULL, last_at TEXT NOT NULL, times BIGINT NOT NULL,
                    removal_seq BIGINT, removal_at TEXT,
                    PRIMARY KEY (tbl, row_id, device)
                );
                """)
            for row in try raw.query("SELECT tbl, row_id, device, first_at, last_at, times, removal_seq, removal_at FROM deliveries") {
                try postgres.run("""
                    INSERT INTO deliveries (tbl, row_id, device, first_at, last_at, times, removal_seq, removal_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, row)
            }
        }
        let store = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        #expect(try store.reader.withConnection { try Self.newDeliveries($0) } == before, "every delivery, every field")
        #expect(try store.reader.withConnection { try $0.scalar("SELECT count(DISTINCT no) FROM devices") } == .integer(2))
        // Opening again changes nothing.
        let again = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        #expect(try again.reader.withConnection { try Self.newDeliveries($0) } == before)
    }
}
