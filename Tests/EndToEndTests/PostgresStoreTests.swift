import Foundation
@testable import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelTesting
import Testing

/// The PostgreSQL store (issue 6, decision 0013): the real `ktd` twice, on one real PostgreSQL
/// database (Tools/postgres), real replicas through libcurl. The no-skipped-change test on
/// PostgreSQL is in `ConcurrencyTests`.
@Suite struct PostgresStoreTests {
    /// Two `ktd` processes on a fresh database, with the office user created.
    struct TwoServers {
        let store: ServerStore
        let servers: [ServerProcess]
        let work: String

        static func start() async throws -> TwoServers {
            let work = try temporaryDirectory("pg-two")
            let model = try shippedDataModel()
            let database = try await onThread { try TestPostgres.freshDatabase("two") }
            let store = try await onThread { try ServerStore(postgres: database, dataModel: model) }
            let schema = repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path
            let servers = try await onThread {
                try ["a", "b"].map {
                    try ServerProcess.start(bin: CommandLineTests.binDirectory, data: work + "/data-\($0)", schema: schema,
                                            arguments: ["--postgres", "postgres://\(database.user)@\(database.host):\(database.port)/\(database.database)"])
                }
            }
            return TwoServers(store: store, servers: servers, work: work)
        }

        /// A replica of a device of `user`, talking to server `index`.
        func replica(_ name: String, server index: Int, user: String = "office", role: Role = .backOffice,
                     scopes: [String] = ["*"]) async throws -> Replica {
            let store = self.store
            let token = try await onThread {
                try store.accounts.ensureUser(user, role: role, scopes: scopes)
                return try store.accounts.addDevice(name: name, user: user).token
            }
            return try Replica.create(path: work + "/\(name).sqlite", dataModel: store.dataModel, serverURL: servers[index].url, token: token)
        }

        func stop() { for server in servers { server.stop() } }
    }

    @Test func placeholdersAreNumberedOutsideQuotesOnly() {
        #expect(PostgresStoreConnection.numberPlaceholders("SELECT ? WHERE a = '?' AND b = \"?x\" AND c = ?").sql
                == "SELECT $1 WHERE a = '?' AND b = \"?x\" AND c = $2")
        #expect(PostgresStoreConnection.numberPlaceholders("SELECT ?2, ?1, ?2").sql == "SELECT $2, $1, $2")
        #expect(PostgresStoreConnection.numberPlaceholders("SELECT ?2, ?1, ?2").count == 2)
        // A push's multi-row insert: thousands of placeholders, numbered in order.
        let sql = PendingWrites.insertSQL(into: "t (a, b)", columns: 2, rows: 5_000, suffix: "")
        let numbered = PostgresStoreConnection.numberPlaceholders(sql)
        #expect(numbered.count == 10_000)
        #expect(numbered.sql.hasSuffix("($9999, $10000)"))
    }

    @Test func aLongPollOnOneProcessWakesForAPushThroughTheOther() async throws {
        let two = try await TwoServers.start()
        defer { two.stop() }
        let laptop = try await two.replica("laptop", server: 0), office = try await two.replica("office", server: 1)
        try await office.sync()
        let engine = SyncEngine(replica: office, transport: CurlTransport(baseURL: two.servers[1].url, token: try office.token))
        let started = ContinuousClock.now
        // The office parks a 25 s long-poll on process b; the laptop pushes through process a.
        async let waited = onThread { try engine.pull(waitSeconds: 25) }
        // Once process b reports the pull parked (its /metrics), the laptop pushes through a.
        let port = try #require(two.servers[1].metricsPort)
        while try await onThread({ try Self.waitingLongPolls(port: port) }) == 0 { await Task.yield() }
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.sync()
        let report = try await waited
        #expect(report.pulled.cellsApplied > 0)
        #expect(try office.value("cases", caseID, "team") == .text("castricum-noord"))
        #expect(ContinuousClock.now - started < .seconds(20), "woken by the push through the other process, not by the deadline")
    }

    /// `kt_longpolls_waiting` from a server's /metrics.
    static func waitingLongPolls(port: Int) throws -> Int {
        let connection = try RawConnection(port: port)
        connection.send(Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
        let line = connection.response().text.split(separator: "\n").first { $0.hasPrefix("kt_longpolls_waiting ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) } ?? 0
    }

    @Test func devicesOnTwoProcessesConvergeWithOneConflictAndScopesHold() async throws {
        let two = try await TwoServers.start()
        defer { two.stop() }
        let office = try await two.replica("office", server: 0)
        let fatima = try await two.replica("laptop-fatima", server: 1, user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let ours = try seedCase(on: office, team: "castricum-noord")
        let theirs = try seedCase(on: office, name: "Meneer Jansen", team: "heiloo")
        try await office.sync()
        try await fatima.sync()
        #expect(try fatima.value("cases", ours.case, "status") == .text("melding"))
        #expect(try fatima.rowCount("cases") == 1, "her team's case only, not Heiloo's")
        #expect(try fatima.rowCount("residents") == 1)

        // The same cell, offline on both, through different processes: one winner, one conflict record.
        try await fatima.execute("UPDATE cases SET status = 'onderzoek' WHERE id = ?", [.text(ours.case)])
        try await office.execute("UPDATE cases SET status = 'beschikking' WHERE id = ?", [.text(ours.case)])
        try await fatima.sync()
        try await office.sync()
        try await fatima.sync()
        let winner = try office.value("cases", ours.case, "status")
        #expect(winner == .text("beschikking"), "the later write wins")
        #expect(try fatima.value("cases", ours.case, "status") == winner)
        let store = two.store
        let conflicts = try await onThread { try store.conflicts.list() }
        #expect(conflicts.count == 1)
        #expect(conflicts.first?.loserValue == .text("onderzoek"))
        #expect(conflicts.first?.winnerUser == "office" && conflicts.first?.loserUser == "fatima")

        // A write into another team's case is refused on either process and stays on her device.
        try await fatima.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, 'niet van ons team')", [.text(newID()), .text(theirs.case)])
        try await fatima.sync()
        let refused = try fatima.outbox()
        #expect(!refused.isEmpty && refused.allSatisfy { $0.code == "out_of_scope" }, "the note stays on her device, refused: \(refused)")
        let theirNotes = try await onThread { try store.inspection.rowsTakingScopes(from: RowReference(table: "cases", row: theirs.case)) }
        #expect(!theirNotes.contains { $0.table == "notes" }, "nothing was stored on Heiloo's case")
    }

    @Test func everyKindOfValueComesBackExactlyAsItWasWritten() async throws {
        let two = try await TwoServers.start()
        defer { two.stop() }
        let writer = try await two.replica("writer", server: 0), reader = try await two.replica("reader", server: 1)
        let (_, caseID) = try seedCase(on: writer)
        let texts = ["", "0", "1", "Trap op komen — één keer per week 🙂", "O'Brien \"quoted\" ?1 $1 \\x00", String(repeating: "lang ", count: 4000)]
        var notes: [String: String] = [:]
        for text in texts {
            let id = newID()
            notes[id] = text
            try await writer.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, ?)", [.text(id), .text(caseID), .text(text)])
        }
        try await writer.execute("UPDATE cases SET question = NULL WHERE id = ?", [.text(caseID)])
        try await writer.sync()
        try await reader.sync()
        for (id, text) in notes { #expect(try reader.value("notes", id, "body") == .text(text)) }
        #expect(try reader.value("cases", caseID, "question") == .null)
        // Integers and reals keep their type on the server (tagged bytea), not only their digits.
        let store = two.store
        let model = store.dataModel
        let columns = model.tables.flatMap { table in table.columns.map { (table: table.name, column: $0) } }
        guard let integer = columns.first(where: { $0.column.type == .integer }),
              let real = columns.first(where: { $0.column.type == .real }) else {
            Issue.record("the data model has no integer or real column")
            return
        }
        // Values inside the columns' ranges, so that validation accepts them.
        let values: [(String, String, CellValue)] = [
            (integer.table, integer.column.name, .integer(Int64(integer.column.maximum ?? 4_000_000_000))),
            (real.table, real.column.name, .real(min(2.5, real.column.maximum ?? 2.5))),
        ]
        let row = newID()
        let node = NodeID.random()
        let now = UInt64(Date().timeIntervalSince1970 * 1000) << 16
        for (index, (table, column, value)) in values.enumerated() {
            let pushed = try await onThread {
                try store.push([Change(id: newID(), table: table, row: row, column: column, value: value,
                                       version: CellVersion(hlc: now + UInt64(index), node: node), base: nil)], device: "test")
            }
            #expect(pushed.results.first?.status == .applied, "\(table).\(column) = \(value): \(pushed.results)")
            #expect(try await onThread { try store.inspection.cell(table: table, row: row, column: column)?.value } == value)
        }
    }
}
