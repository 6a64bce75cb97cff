import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelTesting
import Testing

/// Live sync at the scale of a region (issue 23): a push wakes only the long-polls of devices that
/// may see something of it; the others sleep on.
@Suite struct TargetedWakeTests {
    @Test("a push to team A's case answers team A's long-poll and leaves team B's waiting, until team B's own change")
    func aTeamsPushWakesOnlyThatTeam() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let noord = try server.replica("laptop noord", user: "noord", role: .consultant, scopes: ["team:noord"])
        let zuid = try server.replica("laptop zuid", user: "zuid", role: .consultant, scopes: ["team:zuid"])
        try await noord.sync()
        try await zuid.sync()
        let noordEngine = try SyncEngine(replica: noord), zuidEngine = try SyncEngine(replica: zuid)
        let noordPull = Task { try await noordEngine.pull(waitSeconds: 25) }
        let zuidPull = Task { try await zuidEngine.pull(waitSeconds: 25) }
        while server.sync.notifier.waiting < 2 { await Task.yield() }
        let before = server.sync.notifier.wakeUps

        let (_, noordCase) = try seedCase(on: office, team: "noord")
        try await office.sync()
        let noordReport = try await noordPull.value
        #expect(noordReport.pulled.cellsApplied > 0)
        #expect(try noord.value("cases", noordCase, "team") == .text("noord"))
        #expect(server.sync.notifier.wakeUps - before == 1, "only team noord's long-poll woke")
        #expect(server.sync.notifier.waiting == 1, "team zuid's is still parked")

        let (_, zuidCase) = try seedCase(on: office, name: "Meneer Jansen", team: "zuid")
        try await office.sync()
        _ = try await zuidPull.value
        #expect(try zuid.value("cases", zuidCase, "team") == .text("zuid"))
        #expect(try zuid.rowCount("cases") == 1, "and not team noord's case")
        #expect(server.sync.notifier.wakeUps - before == 2)
    }

    @Test("reference data everyone sees wakes everyone")
    func globalDataWakesEveryone() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let devices = try ["noord", "zuid", "west"].map { try server.replica("laptop \($0)", user: $0, role: .consultant, scopes: ["team:\($0)"]) }
        for device in devices { try await device.sync() }
        let pulls = try devices.map { device in
            let engine = try SyncEngine(replica: device)
            return Task { try await engine.pull(waitSeconds: 25) }
        }
        while server.sync.notifier.waiting < 3 { await Task.yield() }
        let before = server.sync.notifier.wakeUps
        try await office.execute("INSERT INTO teams (id, code, name) VALUES (?, 'oost', 'Sociaal team Oost')", [.text(newID())])
        try await office.sync()
        for pull in pulls { #expect(try await pull.value.pulled.cellsApplied > 0) }
        #expect(server.sync.notifier.wakeUps - before == 3)
        for device in devices { #expect(try device.rowCount("teams") == 1) }
    }

    @Test("a partner's long-poll does not wake for a column outside its profile, and does for one inside")
    func aPartnerWakesOnlyForItsProfile() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let (resident, _) = try seedCase(on: office, team: "noord")
        try await office.sync()
        let centre = try server.replica("carers centre", user: "joyce", role: .partner, scopes: ["team:noord"], profile: "mantelzorgcentrum")
        try await centre.sync()
        #expect(try centre.rowCount("residents") == 1)
        let engine = try SyncEngine(replica: centre)
        let pull = Task { try await engine.pull(waitSeconds: 25) }
        while server.sync.notifier.waiting < 1 { await Task.yield() }
        let before = server.sync.notifier.wakeUps

        try await office.execute("UPDATE residents SET phone = '072 555 0101' WHERE id = ?", [.text(resident)])
        try await office.sync()
        #expect(server.sync.notifier.wakeUps == before, "a phone number is outside the carers' centre's profile")
        #expect(server.sync.notifier.waiting == 1)

        try await office.execute("UPDATE residents SET last_name = 'De Vries-Bakker' WHERE id = ?", [.text(resident)])
        try await office.sync()
        _ = try await pull.value
        #expect(try centre.value("residents", resident, "last_name") == .text("De Vries-Bakker"))
        #expect(server.sync.notifier.wakeUps == before + 1)
    }

    @Test("a scope gained while a device long-polls takes effect when it next wakes")
    func aScopeChangeTakesEffectOnTheNextWakeUp() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let (_, zuidCase) = try seedCase(on: office, name: "Meneer Jansen", team: "zuid")
        try await office.sync()
        let noord = try server.replica("laptop noord", user: "noord", role: .consultant, scopes: ["team:noord"])
        try await noord.sync()
        #expect(try noord.rowCount("cases") == 0)
        let engine = try SyncEngine(replica: noord)
        let pull = Task { try await engine.pull(waitSeconds: 25) }
        while server.sync.notifier.waiting < 1 { await Task.yield() }

        _ = try server.store.accounts.addScope("team:zuid", to: "noord", actor: "test")  // the team lead hands over team zuid
        let (_, noordCase) = try seedCase(on: office, team: "noord")
        try await office.sync()
        _ = try await pull.value
        #expect(try noord.value("cases", noordCase, "team") == .text("noord"))
        #expect(try noord.value("cases", zuidCase, "team") == .text("zuid"), "the new scope's rows came with the wake-up")
    }

    @Test("a team's devices woken by one push are sent one page, read once, and every receipt is noted")
    func devicesWokenTogetherShareOneRead() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let laptops = try (1...4).map { try server.replica("laptop \($0)", user: "noord", role: .consultant, scopes: ["team:noord"]) }
        for laptop in laptops { try await laptop.sync() }
        let pulls = try laptops.map { laptop in
            let engine = try SyncEngine(replica: laptop)
            return Task { try await engine.pull(waitSeconds: 25) }
        }
        while server.sync.notifier.waiting < 4 { await Task.yield() }
        let shared = server.store.sharedPages.sharedAnswers

        let (resident, caseID) = try seedCase(on: office, team: "noord")
        try await office.sync()
        for pull in pulls { #expect(try await pull.value.pulled.cellsApplied > 0) }
        for laptop in laptops { #expect(try laptop.value("cases", caseID, "team") == .text("noord")) }
        #expect(server.store.sharedPages.sharedAnswers - shared == 3, "one device's pull read the page; the other three were sent it")
        let receivedBy = Set(try server.store.audit.resident(resident).receipts.filter { $0.table == "cases" }.map(\.device))
        #expect(receivedBy.isSuperset(of: (1...4).map { "laptop \($0)" }), "who received the case: \(receivedBy)")
    }

    @Test("a device told to start over is not sent the page others with the same access and cursor share: it starts over")
    func aDeviceToldToStartOverDoesNotShare() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let first = try server.replica("laptop 1", user: "noord", role: .consultant, scopes: ["team:noord"])
        let second = try server.replica("laptop 2", user: "noord-2", role: .consultant, scopes: ["team:noord"])
        _ = try seedCase(on: office, name: "Meneer Jansen", team: "noord")
        try await office.sync()
        for laptop in [first, second] { try await laptop.sync() }
        #expect(try first.status().cursor == second.status().cursor && first.status().cursor > 0, "one cursor, past the start")
        // The second user's scopes go and come back: the same access as the first's, but its device must start over.
        _ = try server.store.accounts.addScope("team:zuid", to: "noord-2", actor: "test")
        _ = try server.store.accounts.removeScope("team:zuid", from: "noord-2", actor: "test")
        let resync = { try server.store.reader.withConnection { try $0.scalar("SELECT resync FROM devices WHERE name = 'laptop 2'") } }
        #expect(try resync() == .integer(1))

        let (_, caseID) = try seedCase(on: office, team: "noord")
        try await office.sync()
        _ = try await first.sync()  // the page from their common cursor at this head is now kept for this access
        _ = try await SyncEngine(replica: second).pull(waitSeconds: 0)  // a pull alone, as a woken long-poll's
        #expect(try second.value("cases", caseID, "team") == .text("noord"))
        #expect(try resync() == .integer(0), "it was told to start over and did, rather than being sent the kept page")
    }

    @Test("a shared page leaves out, for each device, the cells that device wrote itself")
    func aSharedPageHasNoEcho() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let (_, caseID) = try seedCase(on: office, team: "noord")
        try await office.sync()
        let anna = try server.replica("laptop anna", user: "noord", role: .consultant, scopes: ["team:noord"])
        let bram = try server.replica("laptop bram", user: "noord", role: .consultant, scopes: ["team:noord"])
        try await anna.sync()
        try await bram.sync()
        // Both ask from the same cursor after anna changed the case: one page, read once, and anna's
        // own cell is not sent back to her.
        try await anna.execute("UPDATE cases SET contact_person = 'Anna' WHERE id = ?", [.text(caseID)])
        let annaEngine = try SyncEngine(replica: anna)
        _ = try await annaEngine.push()
        let shared = server.store.sharedPages.sharedAnswers
        let bramReport = try await SyncEngine(replica: bram).pull()
        let annaReport = try await annaEngine.pull()
        #expect(server.store.sharedPages.sharedAnswers - shared == 1)
        #expect(bramReport.pulled.cellsReceived == 1)
        #expect(try bram.value("cases", caseID, "contact_person") == .text("Anna"))
        #expect(annaReport.pulled.cellsReceived == 0, "her own write is not echoed")
    }

    @Test("deliveries that arrive while one batch is written are noted together in the next transaction")
    func deliveriesAreNotedInBatches() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        let (resident, _) = try seedCase(on: office, team: "noord")
        try await office.sync()
        let names = (1...10).map { "laptop \($0)" }
        var deliveries: [Delivery] = []
        for name in names {
            _ = try server.replica(name, user: "noord", role: .consultant, scopes: ["team:noord"])
            let device = try #require(try server.store.accounts.devices().first { $0.name == name })
            let access = Access(userID: "", userName: "noord", role: .consultant, scopes: ["team:noord"])
            let (page, delivery) = try server.store.pullPage(since: 0, floor: nil, limit: 100, access: access, device: device.id, epoch: nil,
                                                             proof: nil, skipOwn: false)
            #expect(!page.rows.isEmpty)
            deliveries.append(try #require(delivery))
        }
        let batcher = DeliveryBatcher(store: server.store)
        // Hold the store's writer, so that the first delivery's transaction waits and the other nine queue behind it.
        let writerHeld = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        Thread { server.store.writer.withLock { _ in writerHeld.signal(); release.wait() } }.start()
        try await TestThread.run { writerHeld.wait() }  // not on the cooperative pool the server needs
        let first = Task { try await batcher.record(deliveries[0]) }
        while batcher.transactions < 1 { await Task.yield() }
        let rest = deliveries.dropFirst().map { delivery in Task { try await batcher.record(delivery) } }
        while batcher.queued < 9 { await Task.yield() }
        release.signal()
        try await first.value
        for task in rest { try await task.value }
        #expect(batcher.transactions == 2, "the nine that queued were written in one transaction")
        let receivedBy = Set(try server.store.audit.resident(resident).receipts.map(\.device))
        #expect(receivedBy.isSuperset(of: names), "who received the case: \(receivedBy)")
    }

    @Test("nothing new, nobody woken: a push whose every change was already applied wakes no long-poll")
    func aRepeatedPushWakesNobody() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let office = try server.replica("office")
        _ = try seedCase(on: office, team: "noord")
        let changes = try office.pendingChanges(limit: 100)
        try await office.sync()
        let noord = try server.replica("laptop noord", user: "noord", role: .consultant, scopes: ["team:noord"])
        try await noord.sync()
        let engine = try SyncEngine(replica: noord)
        let pull = Task { try await engine.pull(waitSeconds: 3) }
        while server.sync.notifier.waiting < 1 { await Task.yield() }
        let before = server.sync.notifier.wakeUps
        // The office's retry of a batch whose answer it lost: every change is known, nothing changes.
        let outcome = try server.store.pushOutcome(changes.map(\.change), device: "office")
        #expect(outcome.footprint.isEmpty)
        #expect(outcome.response.results.allSatisfy { $0.status == .applied })
        server.sync.notifier.signal(outcome.footprint)
        #expect(server.sync.notifier.wakeUps == before)
        #expect(try await pull.value.pulled.cellsReceived == 0, "answered empty at its deadline")
    }
}

extension PostgresStoreTests {
    @Test("on PostgreSQL, a push through one process wakes the right long-poll on the other, and only that one")
    func aPushThroughOneProcessWakesTheRightLongPollOnTheOther() async throws {
        let two = try await TwoServers.start()
        defer { two.stop() }
        let office = try await two.replica("office", server: 0)
        let noord = try await two.replica("laptop noord", server: 1, user: "noord", role: .consultant, scopes: ["team:noord"])
        let zuid = try await two.replica("laptop zuid", server: 1, user: "zuid", role: .consultant, scopes: ["team:zuid"])
        try await noord.sync()
        try await zuid.sync()
        let port = try #require(two.servers[1].metricsPort)
        let noordEngine = SyncEngine(replica: noord, transport: CurlTransport(baseURL: two.servers[1].url, token: try noord.token))
        let zuidEngine = SyncEngine(replica: zuid, transport: CurlTransport(baseURL: two.servers[1].url, token: try zuid.token))
        let noordPull = Task { try await noordEngine.pull(waitSeconds: 25) }
        let zuidPull = Task { try await zuidEngine.pull(waitSeconds: 25) }
        while try await onThread({ try Self.metric("kt_longpolls_waiting", port: port) }) < 2 { await Task.yield() }
        let before = try await onThread { try Self.metric("kt_longpolls_woken", port: port) }

        let (_, noordCase) = try seedCase(on: office, team: "noord")
        try await office.sync()
        _ = try await noordPull.value
        #expect(try noord.value("cases", noordCase, "team") == .text("noord"))
        #expect(try await onThread { try Self.metric("kt_longpolls_woken", port: port) } - before == 1, "only team noord's long-poll woke")
        #expect(try await onThread { try Self.metric("kt_longpolls_waiting", port: port) } == 1, "team zuid's is still parked")
        zuidPull.cancel()
        _ = try? await zuidPull.value
    }

    /// A sample from a server's /metrics (0 when absent).
    static func metric(_ name: String, port: Int) throws -> Int {
        let connection = try RawConnection(port: port)
        connection.send(Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
        let line = connection.response().text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) } ?? 0
    }
}
