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

    /// The previous release's insert trigger: every column, unconditionally.
    static func captureEveryColumn(_ ddl: String) -> String {
        ddl.replacingOccurrences(of: #" WHERE NEW\."[^"]+" IS NOT NULL OR \([^)]*\);"#, with: ";", options: .regularExpression)
            .replacingOccurrences(of: #" WHERE NEW\."[^"]+" IS NOT NULL;"#, with: ";", options: .regularExpression)
    }
}
