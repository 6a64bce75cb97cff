import Foundation
@testable import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// "No skipped change, ever" (issue 6): while several devices push at the same time, a device that
/// keeps pulling must never move its cursor past a change that commits later with a smaller sequence
/// number. If it did, the change would never reach it: its last pull starts from its cursor. The real
/// `ktd` as a child process, four writers and one reader, all through libcurl.
@Suite struct ConcurrencyTests {
    @Test func aPullingDeviceNeverSkipsAChangeThatCommitsWhileItPulls() async throws {
        let work = try temporaryDirectory("no-skip")
        let data = work + "/data"
        let model = try shippedDataModel()
        let store = try ServerStore(directory: data, dataModel: model)
        let server = try await onThread { try ServerProcess.start(bin: CommandLineTests.binDirectory, data: data, schema: schemaPath) }
        defer { server.stop() }
        try await writeWhilePulling(store: store, servers: [server.url], work: work)
    }

    /// The same on PostgreSQL with two `ktd` processes on one database (issue 6): the writers push
    /// through both, and the reader pulls its pages from both in turn.
    @Test func onPostgreSQLWithTwoServerProcessesNoPullSkipsAChange() async throws {
        let work = try temporaryDirectory("no-skip-pg")
        let model = try shippedDataModel()
        let database = try await onThread { try TestPostgres.freshDatabase("noskip") }
        let store = try await onThread { try ServerStore(postgres: database, dataModel: model) }
        let servers = try await onThread {
            try ["a", "b"].map {
                try ServerProcess.start(bin: CommandLineTests.binDirectory, data: work + "/data-\($0)", schema: schemaPath,
                                        arguments: ["--postgres", "postgres://\(database.user)@\(database.host):\(database.port)/\(database.database)"])
            }
        }
        defer { for server in servers { server.stop() } }
        try await writeWhilePulling(store: store, servers: servers.map(\.url), work: work)
    }

    private var schemaPath: String { repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path }

    /// Four writers push notes at once (writer i through server i mod n) while a fifth device pulls in
    /// pages of 7 cells (page j from server j mod n); in the end every cell of every note is on it.
    private func writeWhilePulling(store: ServerStore, servers: [String], work: String) async throws {
        let model = store.dataModel
        try await onThread { try store.accounts.ensureUser("office", role: .backOffice, scopes: ["*"]) }
        let tokens = try await onThread { try (0..<5).map { try store.accounts.addDevice(name: "device \($0)", user: "office").token } }
        let replicas = try tokens.enumerated().map { index, token in
            try Replica.create(path: work + "/device-\(index).sqlite", dataModel: model, serverURL: servers[index % servers.count], token: token)
        }
        let writers = Array(replicas.prefix(4)), reader = replicas[4]
        let rounds = 30, rowsPerRound = 5

        let outcome = try await onThread { () -> (pulls: Int, failures: [String]) in
            let failures = FailureLog()
            let writing = DispatchGroup()
            for (index, writer) in writers.enumerated() {
                writing.enter()
                Thread {
                    defer { writing.leave() }
                    do {
                        let engine = try SyncEngine(replica: writer)
                        for round in 0..<rounds {
                            try writer.transaction {
                                for row in 0..<rowsPerRound {
                                    try writer.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, ?)",
                                                       [.text(newID()), .text(DemoData.deVriesCase), .text("writer \(index) round \(round) row \(row)")])
                                }
                            }
                            try engine.push()
                        }
                    } catch {
                        failures.add("writer \(index): \(error)")
                    }
                }.start()
            }
            // The reader pulls as fast as it can while the writers commit, with small pages.
            let token = try reader.token
            let engines = servers.map { SyncEngine(replica: reader, transport: CurlTransport(baseURL: $0, token: token)) }
            for engine in engines { engine.pageSize = 7 }
            var pages = 0
            while writing.wait(timeout: .now()) == .timedOut {
                do { pages += try engines[pages % engines.count].pull().pages } catch { failures.add("reader: \(error)") }
            }
            try engines[0].pull()  // from its cursor: a skipped change would never come now
            return (pages, failures.all)
        }
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.pulls > 10, "the reader pulled pages while the writers pushed (\(outcome.pulls) pages)")
        let expected = writers.count * rounds * rowsPerRound
        #expect(try reader.rowCount("notes") == expected, "every note reached the reader")
        let cellsPerNote = 2  // case_id and body: only what was written is captured
        #expect(try await reader.query("SELECT sum(kt_versions_count(versions)) FROM _kt_versions WHERE tbl = 'notes'").rows[0][0] == .integer(Int64(expected * cellsPerNote)),
                "every cell of every note")
        #expect(try await reader.query("SELECT count(*) FROM notes WHERE body LIKE 'writer %' AND case_id IS NOT NULL").rows[0][0]
                == .integer(Int64(expected)))
        for writer in writers { #expect(try writer.outbox().isEmpty) }
    }
}

final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String] = []
    func add(_ entry: String) { lock.withLock { entries.append(entry) } }
    var all: [String] { lock.withLock { entries } }
}
