import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// What travels is what was written (issue 17): a new row's unset columns are not cells, and a pull
/// does not send a device back the cells it wrote itself.
@Suite struct WhatTravelsTests {
    @Test func aNewRowIsCapturedAsTheColumnsItSetAndArrivesWithTheRestNull() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        let resident = newID(), caseID = newID(), bare = newID()
        try await laptop.execute("INSERT INTO residents (id, last_name) VALUES (?, 'Kowalski')", [.text(resident)])
        try await laptop.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'bergen', 'melding')",
                           [.text(caseID), .text(resident)])
        try await laptop.execute("INSERT INTO households (id) VALUES (?)", [.text(bare)])
        let captured = try laptop.outbox().map { "\($0.change.table).\($0.change.column)" }
        let firstHouseholdColumn = try #require(server.store.dataModel.table(named: "households")?.columns.first?.name)
        #expect(captured == ["residents.last_name", "cases.resident_id", "cases.team", "cases.status", "households.\(firstHouseholdColumn)"],
                "only the columns written; a row without any value is one NULL cell")

        try await laptop.sync()
        #expect(try server.store.inspection.cellCount(table: "cases", row: caseID) == 3)
        try await office.sync()
        #expect(try office.value("cases", caseID, "status") == .text("melding"))
        #expect(try office.value("cases", caseID, "contact_person") == .null, "absent reads as NULL")
        #expect(try office.rowCount("households") == 1, "a row without values still exists everywhere")

        // Setting a column to NULL is a write like any other.
        try await office.execute("UPDATE cases SET status = NULL WHERE id = ?", [.text(caseID)])
        #expect(try office.outbox().map(\.change.column) == ["status"])
        try await office.sync()
        try await laptop.sync()
        #expect(try laptop.value("cases", caseID, "status") == .null)
        #expect(try laptop.snapshot() == office.snapshot())
        await server.stop()
    }

    @Test func aDeviceIsNotSentBackWhatItWrote() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        for replica in [laptop, office] { try await replica.sync() }
        for i in 0..<20 { _ = try seedCase(on: laptop, name: "Inwoner \(i)") }
        let written = try laptop.outbox().count

        let own = try await laptop.sync()
        #expect(own.pushed.applied == written)
        #expect(own.pulled.cellsReceived == 0, "its own cells stay home")
        let other = try await office.sync()
        #expect(other.pulled.cellsReceived == written, "another device receives every one")
        #expect(try laptop.cursor == office.cursor, "the laptop's cursor passed its own cells all the same")

        // A cell it wrote that someone else then changed comes back, as the other's.
        let (_, caseID) = try seedCase(on: laptop, name: "Later")
        try await laptop.sync()
        try await office.sync()
        try await office.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        try await office.sync()
        let back = try await laptop.sync()
        #expect(back.pulled.cellsReceived == 1)
        #expect(try laptop.value("cases", caseID, "status") == .text("plan"))
        await server.stop()
    }

    @Test func aReplicaFromBeforeCapturesOnlyWhatWasWrittenOnceOpened() throws {
        let path = try temporaryDirectory("replica") + "/old.sqlite"
        let model = try shippedDataModel()
        do {
            let replica = try Replica.create(path: path, dataModel: model, serverURL: "http://127.0.0.1:9", token: "kt_test")
            // Triggers as the previous release made them: every column of a new row captured.
            try replica.connection.execute("DELETE FROM _kt_meta WHERE key = 'capture_version'")
            for table in model.tables {
                try replica.connection.execute(ReplicaSchema.dropTriggers(for: table))
                try replica.connection.execute(Self.captureEveryColumn(ReplicaSchema.ddl(for: table)))
            }
            try replica.execute("INSERT INTO residents (id, last_name) VALUES (?, 'Oud')", [.text(newID())])
            #expect(try replica.outbox().count == model.table(named: "residents")!.columns.count, "the old triggers capture every column")
        }
        let reopened = try Replica(path: path)
        let fresh = newID()
        try reopened.execute("INSERT INTO residents (id, last_name) VALUES (?, 'Nieuw')", [.text(fresh)])
        #expect(try reopened.outbox().filter { $0.change.row == fresh }.map(\.change.column) == ["last_name"], "the new row is one cell")
        #expect(try reopened.outbox().count == model.table(named: "residents")!.columns.count + 1, "the old pending cells stay")
    }

    @Test("a replica whose updates were captured by one trigger per table gets a trigger per column when opened, and captures the same")
    func aReplicaFromBeforeGetsUpdateTriggersPerColumnOnceOpened() throws {
        let path = try temporaryDirectory("replica") + "/old.sqlite"
        let model = try shippedDataModel()
        let cases = try #require(model.table(named: "cases"))
        let caseID = newID()
        func triggers(_ replica: Replica) throws -> Set<String> {
            Set(try replica.connection.query("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'cases'").compactMap { $0[0].string })
        }
        do {
            let replica = try Replica.create(path: path, dataModel: model, serverURL: "http://127.0.0.1:9", token: "kt_test")
            try replica.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'noord', 'melding')", [.text(caseID), .text(newID())])
            // Capture version 2: one BEFORE UPDATE and one AFTER UPDATE trigger for every column of the table.
            try replica.connection.execute("UPDATE _kt_meta SET value = '2' WHERE key = 'capture_version'")
            try replica.connection.execute(ReplicaSchema.dropTriggers(for: cases))
            try replica.connection.execute(Self.captureVersion2UpdateTriggers(for: cases) + ReplicaSchema.ddl(for: cases)
                .components(separatedBy: "CREATE TRIGGER").filter { !$0.contains("UPDATE OF") }.joined(separator: "CREATE TRIGGER"))
            #expect(try triggers(replica).contains("_kt_cases_update"))
        }
        let reopened = try Replica(path: path)
        let names = try triggers(reopened)
        #expect(!names.contains("_kt_cases_update") && !names.contains("_kt_cases_check_update"), "\(names.sorted())")
        #expect(names.isSuperset(of: cases.columns.map { "_kt_cases_update_\($0.name)" }))
        let before = try reopened.outbox().count
        try reopened.execute("UPDATE cases SET status = 'plan', team = 'noord', contact_person = 'Anne' WHERE id = ?", [.text(caseID)])
        #expect(try reopened.outbox().dropFirst(before).map(\.change.column).sorted() == ["contact_person", "status"], "what changed, once")
        #expect(throws: (any Error).self, "a value outside the column's list is still refused") {
            try reopened.execute("UPDATE cases SET status = 'nonsense' WHERE id = ?", [.text(caseID)])
        }
        #expect(throws: (any Error).self, "the id still never changes") {
            try reopened.execute("UPDATE cases SET id = ? WHERE id = ?", [.text(newID()), .text(caseID)])
        }
    }

    /// The update triggers of capture version 2: one of each kind for all of a table's columns.
    static func captureVersion2UpdateTriggers(for table: DataModel.Table) -> String {
        let t = ReplicaSchema.quote(table.name), tl = ReplicaSchema.literal(table.name)
        let checks = table.columns.map { column -> String in
            let c = ReplicaSchema.quote(column.name)
            return "SELECT kt_check(\(tl), \(ReplicaSchema.literal(column.name)), NEW.\(c)) WHERE OLD.\(c) IS NOT NEW.\(c);"
        }.joined(separator: "\n")
        let captures = table.columns.map { column -> String in
            let c = ReplicaSchema.quote(column.name), name = ReplicaSchema.literal(column.name)
            let lookup = "FROM _kt_versions WHERE tbl = \(tl) AND row_id = NEW.id"
            return "INSERT INTO _kt_outbox (tbl, row_id, col, value, hlc, base_hlc, base_node, written_at) SELECT \(tl), NEW.id, \(name), NEW.\(c), "
                + "kt_tick((SELECT value FROM _kt_meta WHERE key = 'hlc')), (SELECT kt_version_hlc(versions, \(name)) \(lookup)), "
                + "(SELECT kt_version_node(versions, \(name)) \(lookup)), kt_now() WHERE OLD.\(c) IS NOT NEW.\(c);"
        }.joined(separator: "\n")
        return """
            CREATE TRIGGER "_kt_\(table.name)_check_update" BEFORE UPDATE ON \(t) WHEN kt_capture() BEGIN
            SELECT RAISE(ABORT, 'keukentafel: the id of a synced row never changes; insert a new row instead') WHERE OLD.id IS NOT NEW.id;
            \(checks)
            END;
            CREATE TRIGGER "_kt_\(table.name)_update" AFTER UPDATE ON \(t) WHEN kt_capture() BEGIN
            \(captures)
            END;

            """
    }

    /// The previous release's insert trigger: every column, unconditionally.
    static func captureEveryColumn(_ ddl: String) -> String {
        ddl.replacingOccurrences(of: #" WHERE NEW\."[^"]+" IS NOT NULL OR \([^)]*\);"#, with: ";", options: .regularExpression)
            .replacingOccurrences(of: #" WHERE NEW\."[^"]+" IS NOT NULL;"#, with: ";", options: .regularExpression)
    }
}
