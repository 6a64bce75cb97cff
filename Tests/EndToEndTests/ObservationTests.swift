import Foundation
import KeukentafelProtocol
@testable import KeukentafelClient
import KeukentafelServer
import KeukentafelTesting
import Testing

/// Observed queries (issue 18): the result again whenever a table the query reads changes — a local
/// write, a pulled page, an eviction, a purge, another process — and not for other tables.
@Suite struct ObservationTests {
    static let team = "castricum-noord"

    /// What an observation delivered, in order; `next()` waits for the next one. The deadline only
    /// matters when the test fails: then it fails instead of hanging.
    final class Deliveries: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [QueryResult] = []
        private var taken = 0
        private let arrived = DispatchSemaphore(value: 0)

        func add(_ result: Result<QueryResult, any Error>) {
            guard case .success(let rows) = result else { return }
            lock.withLock { results.append(rows) }
            arrived.signal()
        }

        func next() async throws -> QueryResult? {
            try await onThread {
                guard self.arrived.wait(timeout: .now() + 30) == .success else { return nil }
                return self.lock.withLock {
                    defer { self.taken += 1 }
                    return self.results[self.taken]
                }
            }
        }
    }

    static func text(_ value: CellValue?) -> String? {
        if case .text(let text)? = value { return text }
        return nil
    }
    static func ids(_ result: QueryResult?) -> [String] { result?.rows.compactMap { text($0.first) } ?? ["(nothing delivered)"] }

    @Test("an observed query follows local writes, pulled pages, evictions, purges and another process")
    func followsEveryKindOfChange() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let (_, first) = try seedCase(on: office, team: Self.team)
        try await office.sync()

        let laptop = try server.replica("laptop", user: "fatima", role: .consultant, scopes: ["team:\(Self.team)"])
        let deliveries = Deliveries()
        let observation = try laptop.observe("SELECT id, status FROM cases ORDER BY id") { deliveries.add($0) }
        #expect(Self.ids(try await deliveries.next()) == [], "the current result first")

        try await laptop.sync()
        #expect(Self.ids(try await deliveries.next()) == [first], "a pulled page")

        let (mine, second) = try seedCase(on: laptop, name: "Meneer Jansen", team: Self.team)
        #expect(Self.ids(try await deliveries.next()) == [first, second].sorted(), "a local write")

        // Another process writes the file: `kt sql`.
        let kt = CommandLineTests.binDirectory.appendingPathComponent("kt").path
        let other = try await onThread {
            try CommandLineTests.runBlocking("kt", ["sql", "--db", laptop.path, "UPDATE cases SET status = 'plan' WHERE id = '\(second)'"],
                                            in: NSTemporaryDirectory())
        }
        #expect(other.status == 0, "\(kt): \(other.error)")
        let afterOther = try await deliveries.next()
        #expect(afterOther?.rows.first { Self.text($0.first) == second }?[1] == .text("plan"), "another process")

        // The office moves the first case to another team: it leaves the laptop.
        try await office.execute("UPDATE cases SET team = 'castricum-zuid' WHERE id = ?", [.text(first)])
        try await office.sync()
        let evicted = try await laptop.sync()
        #expect(evicted.pulled.rowsEvicted > 0)
        #expect(Self.ids(try await deliveries.next()) == [second], "an eviction")

        // The resident of the second case is erased: purged from the laptop.
        _ = try server.store.erasure.eraseResident(mine, actor: "test")
        let purged = try await laptop.sync()
        #expect(purged.pulled.rowsPurged > 0)
        #expect(Self.ids(try await deliveries.next()) == [], "a purge")

        // A write to a table the query does not read does not run it.
        let before = observation.observer.evaluationCount
        try await laptop.execute("INSERT INTO residents (id, last_name, municipality) VALUES (?, 'Smit', 'castricum')", [.text(newID())])
        observation.observer.drain()  // a run the insert had scheduled would have finished now
        #expect(observation.observer.evaluationCount == before, "the residents insert did not run the query")
        let (_, third) = try seedCase(on: laptop, name: "Mevrouw Kok", team: Self.team)
        #expect(Self.ids(try await deliveries.next()) == [third])
        #expect(observation.observer.evaluationCount == before + 1)
        observation.cancel()
    }

    @Test("the stream form delivers the current result, then changes, and per-table events name the tables")
    func streamAndTableEvents() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop")
        let tables = laptop.tableChanges()
        let stream = try laptop.observe("SELECT count(*) FROM cases")
        var results = stream.makeAsyncIterator()
        #expect(try await results.next()?.rows == [[.integer(0)]])
        _ = try seedCase(on: laptop)
        #expect(try await results.next()?.rows == [[.integer(1)]])
        var events = tables.makeAsyncIterator()
        let changed = try #require(await events.next())
        #expect(changed.isSuperset(of: ["cases", "residents", "_kt_outbox"]), "\(changed)")

        #expect(throws: ReplicaError.self) { _ = try laptop.observe("SELECT * FROM _kt_meta") }
        #expect(throws: ReplicaError.self) { _ = try laptop.observe("SELECT 1; SELECT 2") }
    }
}
