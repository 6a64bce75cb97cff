import Foundation
import KeukentafelProtocol
@testable import KeukentafelClient
import KeukentafelTesting
import Testing

/// The app's SQL on a replica (issue 18): the sync's bookkeeping out of its reach, scripts that run
/// whole or not at all, and queries that do not wait for the writer.
@Suite struct AppSQLTests {
    static func notAllowed(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch ReplicaError.notAllowed(let reason) {
            return reason
        } catch {
            return "wrong error: \(error)"
        }
    }

    @Test("the app can neither change the sync's tables, nor read the token, nor drop the capture")
    func theBookkeepingIsOutOfTheAppsReach() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let replica = try server.replica("laptop")
        let (_, caseID) = try seedCase(on: replica)
        let pending = try replica.outboxCounts().pending
        #expect(pending > 0)

        for statement in ["DELETE FROM _kt_outbox", "UPDATE _kt_versions SET versions = ''", "INSERT INTO _kt_meta (key, value) VALUES ('cursor', '0')",
                          "DROP TRIGGER \"_kt_cases_update_status\"", "ALTER TABLE cases ADD COLUMN secret TEXT", "DROP TABLE cases",
                          "CREATE TRIGGER quiet BEFORE UPDATE ON cases BEGIN SELECT 1; END", "PRAGMA writable_schema = ON"] {
            let reason = Self.notAllowed { try replica.execute(statement) }
            #expect(reason != nil && reason?.hasPrefix("wrong error") == false, "\(statement): \(reason ?? "allowed")")
        }
        let tokenRead = Self.notAllowed { _ = try replica.query("SELECT value FROM _kt_meta WHERE key = 'token'") }
        #expect(tokenRead?.contains("token") == true, "\(tokenRead ?? "allowed")")
        // Not through a view or a trigger of the app's own either.
        try await replica.execute("CREATE VIEW settings AS SELECT * FROM _kt_meta")
        #expect(Self.notAllowed { _ = try replica.query("SELECT * FROM settings") } != nil)
        try await replica.execute("CREATE TABLE scratch (a); CREATE TRIGGER sweep AFTER INSERT ON scratch BEGIN DELETE FROM _kt_outbox; END")
        #expect(Self.notAllowed { try replica.execute("INSERT INTO scratch VALUES (1)") } != nil)

        #expect(try replica.outboxCounts().pending == pending, "every captured edit still waits to be sent")
        // What the app may do still works: read the bookkeeping, write synced and local tables.
        #expect(try await replica.query("SELECT count(*) FROM _kt_outbox").rows[0][0] == .integer(Int64(pending)))
        try await replica.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
        #expect(try replica.outboxCounts().pending == pending + 1)
        // And the sync itself is not bound by the app's rules.
        let report = try await replica.sync()
        #expect(report.pushed.applied == pending + 1 && report.pushed.rejected == 0)
        #expect(try replica.outboxCounts().pending == 0)
    }

    @Test("one statement where one is expected; a script runs whole or not at all")
    func severalStatements() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let replica = try server.replica("laptop")
        let (resident, _) = try seedCase(on: replica)
        let before = try replica.outboxCounts().pending

        #expect(throws: ReplicaError.self) { try replica.query("SELECT 1; SELECT 2") }
        #expect(try await replica.query("SELECT 1; -- and a comment").rows == [[.integer(1)]])
        let two = "INSERT INTO notes (id, author, body) VALUES (kt_new_id(), 'Sanne', ?); INSERT INTO notes (id, author, body) VALUES (kt_new_id(), 'Sanne', 'b')"
        #expect(throws: ReplicaError.self) { try replica.execute(two, [.text("a")]) }
        #expect(try replica.rowCount("notes") == 0, "neither statement ran")

        let results = try replica.executeScript("""
            UPDATE residents SET first_name = 'Ans' WHERE id = '\(resident)';
            SELECT first_name FROM residents WHERE id = '\(resident)';
            """)
        #expect(results.count == 2)
        #expect(results[0].changes == 1 && !results[0].isQuery)
        #expect(results[1].rows == [[.text("Ans")]])

        // The second statement fails validation: the first is undone too, with its captured change.
        let pendingBefore = try replica.outboxCounts().pending
        #expect(throws: (any Error).self) {
            try replica.executeScript("""
                UPDATE residents SET first_name = 'Bep' WHERE id = '\(resident)';
                UPDATE residents SET preferred_channel = 'fax' WHERE id = '\(resident)';
                """)
        }
        #expect(try replica.value("residents", resident, "first_name") == .text("Ans"))
        #expect(try replica.outboxCounts().pending == pendingBefore)
        #expect(pendingBefore == before + 1)
        #expect(throws: ReplicaError.self) { try replica.executeScript("  -- nothing to run") }
    }

    @Test("a query while a pulled page is being applied answers from the last committed state, at once")
    func readsDoNotWaitForAPageApply() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        for _ in 0..<3 { _ = try seedCase(on: office) }
        try await office.sync()

        let laptop = try server.replica("laptop")
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        laptop.afterApplyingRow = { index in
            if index == 0 {
                entered.signal()
                release.wait()
            }
        }
        let sync = Task { try await laptop.sync() }
        // The writer is in the middle of a page: a query must not wait for it. (Waiting happens on a
        // thread of its own: the server needs the cooperative pool to answer.)
        let (inTime, sawBefore) = try await onThread { () -> (Bool, Bool) in
            entered.wait()
            let answered = DispatchSemaphore(value: 0)
            let seen = Counter()
            Thread.detachNewThread {
                if (try? laptop.rowCount("cases")) == 0 { _ = seen.increment() }
                answered.signal()
            }
            let inTime = answered.wait(timeout: .now() + 20) == .success
            release.signal()
            return (inTime, seen.current == 1)
        }
        #expect(inTime, "the query waited for the page apply")
        #expect(sawBefore, "it saw the state before the page")
        _ = try await sync.value
        #expect(try laptop.rowCount("cases") == 3)
    }

    @Test("inside a transaction a query sees the transaction's own writes; others see them once committed")
    func aTransactionReadsItsOwnWrites() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let replica = try server.replica("laptop")
        let (_, caseID) = try seedCase(on: replica)
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let inside = Counter()
        let writer = Thread {
            try? replica.transaction {
                try replica.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(caseID)])
                if try replica.value("cases", caseID, "status") == .text("plan") { _ = inside.increment() }
                entered.signal()
                release.wait()
            }
            entered.signal()
        }
        writer.start()
        let outside = try await onThread { () -> CellValue? in
            entered.wait()
            let outside = try replica.value("cases", caseID, "status")
            release.signal()
            entered.wait()
            return outside
        }
        #expect(inside.current == 1, "the transaction reads what it wrote")
        #expect(outside == .text("melding"), "another thread reads the committed state without waiting")
        #expect(try replica.value("cases", caseID, "status") == .text("plan"))
    }
}
