import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// The examples of `docs/client-library.md`, as written there (the server's address aside), built
/// only on the public API (no @testable import) and run against a real server.
@Suite struct ClientGuideTests {
    @Test("the client library guide's examples work as written")
    func theGuideWorks() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let team = "castricum-noord"
        let token = try server.token("laptop fatima", user: "fatima", role: .consultant, scopes: ["municipality:castricum", "team:\(team)"])
        let office = try server.replica("office")
        let (_, caseID) = try seedCase(on: office, team: team)
        try await office.sync()
        let directory = try temporaryDirectory("guide")
        let url = server.url

        // 1. Connect a laptop once
        let path = directory + "/laptop.sqlite"
        try await onThread {
            let replica = try Replica.connect(path: path, serverURL: url, token: token)
            #expect(try replica.identity?.user == "fatima")
            #expect(try replica.identity?.scopes.contains("team:\(team)") == true)
        }
        let replica = try Replica(path: path)
        try await replica.sync()

        // Record who viewed a resident
        try replica.recordView(table: "cases", row: caseID, purpose: "keukentafelgesprek voorbereiden")
        #expect(try replica.unsentViews().count == 1)

        // Encrypt the file
        let passphrase = "zonnebloem op de keukentafel", newPassphrase = "een nieuwe zin voor de laptop"
        let encryptedPath = directory + "/encrypted.sqlite"
        let encryptedToken = try server.token("laptop fatima encrypted", user: "fatima")
        try await onThread {
            let replica = try Replica.connect(path: encryptedPath, serverURL: url, token: encryptedToken, encryption: .passphrase(passphrase))
            #expect(replica.isEncrypted)
        }
        try await onThread {
            let key = try #require(try ReplicaKey.unlock(replicaPath: encryptedPath, passphrase: passphrase))
            let replica = try Replica(path: encryptedPath, key: key)
            try SyncEngine(replica: replica).sync()
            #expect(throws: ReplicaError.self) { try Replica(path: encryptedPath) }
            try Replica.changePassphrase(path: encryptedPath, from: passphrase, to: newPassphrase)
            #expect(try Replica(path: encryptedPath, passphrase: newPassphrase).status().encrypted)
        }

        // 2. Read and write with SQL
        try await replica.execute("UPDATE cases SET status = ? WHERE id = ?", [.text("plan"), .text(caseID)])
        let open = try await replica.query("SELECT id, question FROM cases WHERE status <> 'closed' ORDER BY melding_date")
        #expect(open.rows.map { $0[0] } == [.text(caseID)])
        try replica.transaction {
            let visit = RowID.new()
            try replica.execute("INSERT INTO visits (id, case_id, kind, happened_at) VALUES (?, ?, 'kitchen_table', ?)",
                                [.text(visit), .text(caseID), .text("2026-12-01T10:00:00Z")])
            try replica.execute("INSERT INTO notes (id, case_id, author, body) VALUES (kt_new_id(), ?, 'Fatima', ?)",
                                [.text(caseID), .text("Mevrouw wil graag hulp bij het huishouden.")])
        }
        #expect(throws: ReplicaError.self) { try replica.execute("DELETE FROM _kt_outbox") }
        struct OpenCase: Codable {
            var id: String
            var resident_id: String
            var team: String
            var status: String?
        }
        let residentID = try await #require(try replica.query("SELECT resident_id FROM cases").rows.first?.first.flatMap { value -> String? in
            if case .text(let id) = value { return id } else { return nil }
        })
        try replica.insert(OpenCase(id: RowID.new(), resident_id: residentID, team: team, status: "melding"), into: "cases")
        let mine = try await replica.fetch(OpenCase.self, "SELECT * FROM cases WHERE team = ? AND status <> 'closed'", [.text(team)])
        #expect(mine.count == 2)

        // 3. Keep a screen right: observed queries
        let results = try replica.observe("SELECT id, status FROM cases WHERE team = ? ORDER BY id", [.text(team)])
        var screen = results.makeAsyncIterator()
        func status(in result: QueryResult?) -> CellValue? { result?.rows.first { $0[0] == .text(caseID) }?[1] }
        #expect(status(in: try await screen.next()) == .text("plan"))
        try await office.execute("UPDATE cases SET status = 'evaluatie' WHERE id = ?", [.text(caseID)])
        try await office.sync()
        let report = try await SyncEngine(replica: replica).sync()
        #expect(report.pushed.applied > 0)
        // The screen may first see the laptop's own push settle; the office's change follows.
        var latest = try await screen.next()
        for _ in 0..<5 where status(in: latest) != .text("evaluatie") { latest = try await screen.next() }
        #expect(status(in: latest) == .text("evaluatie"), "the office's change reached the screen")

        let noteCount = NoteCount()
        let observation = try replica.observe("SELECT count(*) FROM notes WHERE case_id = ?", [.text(caseID)]) { result in
            if case .success(let rows) = result { noteCount.set(rows.rows[0][0]) }
        }
        try await onThread { noteCount.wait(for: .integer(1)) }
        observation.cancel()

        // 4. Sync, with a status line (the guide's loop prints these lines; here they are collected)
        let engine = try SyncEngine(replica: replica)
        let startedAt = Date()
        let statuses = SyncStatusTests.collect(engine.statusUpdates()) { ($0.lastSyncedAt ?? .distantPast) >= startedAt }
        try await engine.sync()
        let printed = await statuses.value.map { status in
            status.downloading ? "downloading \(status.cellsDownloaded) of about \(status.cellsExpected ?? 0)"
                : "\(status.connection) \(status.pendingChanges) waiting \(status.lastError?.code ?? "")"
        }
        #expect(printed.first?.hasPrefix("offline") == true && printed.last?.hasPrefix("connected 0 waiting") == true, "\(printed)")

        // 4. Stay in sync while the app runs
        let live = try SyncEngine(replica: replica)
        live.connect()
        let noteID = newID()
        try await office.sync()  // the office is at the head of the feed: its long-poll waits for the note
        let officeWaits = Task { try await SyncEngine(replica: office).pull(waitSeconds: 30) }
        try await replica.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, 'Gebeld met dochter')",
                                  [.text(noteID), .text(caseID)])
        _ = try await officeWaits.value
        #expect(try office.value("notes", noteID, "body") == .text("Gebeld met dochter"), "connect() pushed the note by itself")
        await live.disconnect()
        #expect(live.currentStatus.connection == .offline)

        // 4. Cancellation
        let download = Task { try await SyncEngine(replica: replica).pull(waitSeconds: 30) }
        download.cancel()
        await #expect(throws: CancellationError.self) { try await download.value }

        // 5. A new token
        _ = try server.store.accounts.revokeDevice("laptop fatima", actor: "guide")
        let newToken = try server.token("laptop fatima 2", user: "fatima")
        let reconnected = try await onThread { try replica.reconnect(token: newToken) }
        #expect(reconnected.downloadsAgain)
        try await replica.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        let afterLogin = try await SyncEngine(replica: replica).sync()
        #expect(afterLogin.pushed.applied == 1)
    }

    final class NoteCount: @unchecked Sendable {
        private let condition = NSCondition()
        private var value: CellValue?
        func set(_ value: CellValue) { condition.withLock { self.value = value; condition.broadcast() } }
        func wait(for expected: CellValue) {
            condition.withLock {
                let deadline = Date().addingTimeInterval(30)
                while value != expected, condition.wait(until: deadline) {}
            }
        }
    }
}
