import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// The sync status an app shows (issue 18): offline → connecting → downloading with progress →
/// connected, has synced, and the changes the server refused, with their codes.
@Suite struct SyncStatusTests {
    /// Listens to a stream until `done` says the last wanted value arrived; then returns all of them.
    /// After a minute it gives up with what it has (the test then fails on it instead of hanging).
    static func collect<T: Sendable>(_ stream: AsyncStream<T>, until done: @escaping @Sendable (T) -> Bool) -> Task<[T], Never> {
        let collector = Task {
            var seen: [T] = []
            for await value in stream {
                seen.append(value)
                if done(value) { break }
            }
            return seen
        }
        Task {
            try? await Task.sleep(for: .seconds(60))
            collector.cancel()  // a cancelled AsyncStream iteration ends
        }
        return collector
    }

    /// A server whose office pushed 40 cases: several pages for a fresh device at a page size of 60.
    static func serverWithFortyCases() async throws -> TestServer {
        let server = try await TestServer.start()
        let office = try server.replica("office")
        for index in 0..<40 { _ = try seedCase(on: office, name: "Bewoner \(index)") }
        try await office.sync()
        return server
    }

    @Test("a first download: offline, connecting, downloading with progress, then connected and synced")
    func aFirstDownload() async throws {
        let server = try await Self.serverWithFortyCases()
        defer { Task { await server.stop() } }

        let laptop = try server.replica("laptop")
        let engine = try SyncEngine(replica: laptop)
        engine.pageSize = 60
        #expect(engine.currentStatus.connection == .offline && !engine.currentStatus.hasSynced)
        let statuses = Self.collect(engine.statusUpdates()) { $0.hasSynced && $0.connection == .connected && !$0.downloading }
        _ = try await engine.sync()
        let seen = await statuses.value

        #expect(seen.first?.connection == .offline, "the current status first")
        #expect(seen.contains { $0.connection == .connecting })
        let downloading = seen.filter(\.downloading)
        #expect(downloading.count >= 3, "one status per page: \(downloading.count)")
        #expect(downloading.map(\.cellsDownloaded) == downloading.map(\.cellsDownloaded).sorted() && downloading.first!.cellsDownloaded > 0)
        let total = try #require(seen.last).cellsDownloaded
        #expect(downloading.allSatisfy { ($0.cellsExpected ?? 0) >= $0.cellsDownloaded && ($0.cellsExpected ?? 0) <= total * 2 },
                "estimates: \(downloading.map { "\($0.cellsDownloaded)/\($0.cellsExpected ?? -1)" }), total \(total)")
        let last = try #require(seen.last)
        #expect(last.hasSynced && last.lastError == nil && last.lastSyncedAt != nil && last.cellsExpected == total)
        #expect(try laptop.hasSynced)
    }

    @Test("an unreachable server: connecting, then offline with the code unreachable; the write waits")
    func offline() async throws {
        let directory = try temporaryDirectory("status")
        let replica = try Replica.create(path: directory + "/laptop.sqlite", dataModel: try shippedDataModel(),
                                         serverURL: "http://127.0.0.1:1", token: "kt_nobody")
        _ = try seedCase(on: replica)
        let engine = try SyncEngine(replica: replica)
        let statuses = Self.collect(engine.statusUpdates()) { $0.lastError != nil }
        await #expect(throws: SyncError.self) { _ = try await engine.sync() }
        let seen = await statuses.value
        #expect(seen.map(\.connection).contains(.connecting))
        #expect(seen.last?.connection == .offline && seen.last?.lastError?.code == "unreachable")
        #expect(seen.last?.pendingChanges ?? 0 > 0 && !(seen.last?.hasSynced ?? true))
    }

    @Test("a change the server refuses is reported with its code, and stays on the device")
    func aRefusedChange() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let engine = try SyncEngine(replica: laptop)
        let refusals = Self.collect(engine.refusedChanges()) { $0.table == "cases" }
        _ = try seedCase(on: laptop, team: "castricum-zuid")  // not her team
        _ = try await engine.sync()
        let refused = await refusals.value
        #expect(refused.contains { $0.table == "cases" && $0.code == "out_of_scope" }, "\(refused)")
        #expect(try laptop.status().rejectedChanges.contains { $0.code == "out_of_scope" })
        #expect(engine.currentStatus.lastError == nil, "a refused change is not a failed sync")
    }

    @Test("a first download cut off half-way leaves the replica partly downloaded, and says so")
    func anInterruptedFirstDownload() async throws {
        let server = try await Self.serverWithFortyCases()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop")
        let pages = Counter()
        laptop.afterApplyingRow = { index in
            if index == 0, pages.increment() == 3 { throw TestFailure("the network went away") }
        }
        await #expect(throws: TestFailure.self) { _ = try await laptop.sync(pageSize: 60) }
        let partly = try laptop.status()
        #expect(partly.cursor > 0 && !partly.hasSynced, "two pages in, not synced yet")
        laptop.afterApplyingRow = nil
        try await laptop.sync(pageSize: 60)
        #expect(try laptop.status().hasSynced)
    }
}
