import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// Links (the values of reference and unique-key columns) are kept once, keyed by value (decision
/// 0033): a link goes by its old value, which the row's record holds, when the value changes.
@Suite struct RowLinkTests {
    static func links(_ server: TestServer, row: String) throws -> [String] {
        try server.store.reader.withConnection { connection in
            try connection.query("SELECT col, value FROM row_links WHERE row_id = ? ORDER BY col", [.text(row)])
                .map { "\($0[0].string ?? "?")=\($0[1].string ?? "?")" }
        }
    }

    static func cases(_ server: TestServer, inHousehold household: String) throws -> [String] {
        try server.store.reader.withConnection { try Records($0, store: server.store).rows(of: "cases", whose: "household_id", is: household) }
    }

    @Test("a reference that is set, moved, moved back within one push and cleared keeps exactly its current link")
    func linksFollowTheirValue() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let (resident, caseID) = try seedCase(on: office, team: "noord")
        let first = newID(), second = newID()
        for household in [first, second] {
            try await office.execute("INSERT INTO households (id, name) VALUES (?, 'Familie De Vries')", [.text(household)])
        }
        _ = try await office.sync()
        #expect(try Self.links(server, row: caseID) == ["resident_id=\(resident)"])

        try await office.execute("UPDATE cases SET household_id = ? WHERE id = ?", [.text(first), .text(caseID)])
        _ = try await office.sync()
        #expect(try Self.links(server, row: caseID) == ["household_id=\(first)", "resident_id=\(resident)"])
        #expect(try Self.cases(server, inHousehold: first) == [caseID])

        try await office.execute("UPDATE cases SET household_id = ? WHERE id = ?", [.text(second), .text(caseID)])
        _ = try await office.sync()
        #expect(try Self.links(server, row: caseID) == ["household_id=\(second)", "resident_id=\(resident)"], "the old link went with the old value")
        #expect(try Self.cases(server, inHousehold: first).isEmpty)
        #expect(try Self.cases(server, inHousehold: second) == [caseID])

        // Two changes of one cell in one push (another device's, then this one's): the link ends where the cell does.
        let laptop = try server.replica("laptop")
        _ = try await laptop.sync()
        try await laptop.execute("UPDATE cases SET household_id = ? WHERE id = ?", [.text(first), .text(caseID)])
        try await laptop.execute("UPDATE cases SET household_id = ? WHERE id = ?", [.text(second), .text(caseID)])
        _ = try await laptop.sync()
        #expect(try Self.links(server, row: caseID) == ["household_id=\(second)", "resident_id=\(resident)"])

        try await office.execute("UPDATE cases SET household_id = NULL WHERE id = ?", [.text(caseID)])
        _ = try await office.sync()
        #expect(try Self.links(server, row: caseID) == ["resident_id=\(resident)"], "a cleared reference has no link")
        #expect(try Self.cases(server, inHousehold: second).isEmpty)
    }

    @Test("an erased resident's rows leave no link behind")
    func erasureRemovesLinks() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let (resident, caseID) = try seedCase(on: office, team: "noord")
        let (_, otherCase) = try seedCase(on: office, name: "Meneer Jansen", team: "noord")
        _ = try await office.sync()
        #expect(try !Self.links(server, row: caseID).isEmpty)
        _ = try server.store.erasure.eraseResident(resident, actor: "test")
        #expect(try Self.links(server, row: caseID).isEmpty)
        #expect(try Self.links(server, row: otherCase).count == 1, "another resident's case keeps its link")
    }

    @Test("links of the previous release (by row, with an index by value) move to one table keyed by value")
    func linksMove() async throws {
        let (directory, path) = try StoreLayoutTests.dataDirectory(from: RecordFormatTests.jsonRecordsDump, label: "links")
        let query = "SELECT tbl, row_id, col, value FROM row_links ORDER BY tbl, row_id, col"
        let before = try SQLiteConnection(path: path).query(query)
        #expect(before.count == 29, "the fixture is what it says")
        let server = try await TestServer.start(directory: directory)
        let raw = try SQLiteConnection(path: path)
        #expect(try raw.query(query) == before)
        #expect(try raw.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'row_links_by_value'") == .integer(0))
        #expect(try raw.query("SELECT name FROM pragma_index_info((SELECT name FROM pragma_index_list('row_links') WHERE origin = 'pk'))").map { $0[0] }
                == ["value", "tbl", "col", "row_id"].map(CellValue.text))
        await server.stop()
    }

    @Test("on PostgreSQL, links by row with an index by value move to one table keyed by value, once")
    func postgresLinksMove() throws {
        let (_, path) = try StoreLayoutTests.dataDirectory(from: RecordFormatTests.jsonRecordsDump, label: "links-pg")
        let raw = try SQLiteConnection(path: path)
        let query = "SELECT tbl, row_id, col, value FROM row_links ORDER BY tbl, row_id, col"
        let before = try raw.query(query)
        let location = try TestPostgres.freshDatabase("links")
        do {
            // The previous release's table and index, with the fixture's links and the model they were made for.
            let postgres = try PostgresStoreConnection(location)
            try postgres.execute("""
                CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA);
                CREATE TABLE row_links (
                    tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL, col TEXT COLLATE "C" NOT NULL, value BYTEA NOT NULL,
                    PRIMARY KEY (tbl, row_id, col)
                );
                CREATE INDEX row_links_by_value ON row_links(value, tbl, col);
                """)
            try postgres.setMeta("row_links", try #require(try raw.scalar("SELECT value FROM meta WHERE key = 'row_links'")))
            for row in before { try postgres.run("INSERT INTO row_links (tbl, row_id, col, value) VALUES (?, ?, ?, ?)", row) }
        }
        let store = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        #expect(try store.reader.withConnection { try $0.query(query) } == before)
        #expect(try store.reader.withConnection { try $0.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'row_links_by_value'") } == .integer(0))
        #expect(try store.reader.withConnection { try Records($0, store: store).rows(of: "cases", whose: "resident_id", is: "a0000000-0000-4000-8000-000000000005") }
                == ["c0000000-0000-4000-8000-000000000005"])
        let again = try ServerStore(postgres: location, dataModel: try shippedDataModel())
        #expect(try again.reader.withConnection { try $0.query(query) } == before)
    }
}
