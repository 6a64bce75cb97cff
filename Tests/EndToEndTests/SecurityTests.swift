import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import KeukentafelSQLite
import Testing

/// What an outside test battery found a valid token could do (issue 15), one test per hole, each
/// driven through the real HTTP API with tokens of the roles involved: raw requests where the battery
/// sent what no honest replica would, and real replicas where an honest device must still get through.
/// Each ends by looking at the victim's data from the store, or from a fresh back-office replica.
///
/// Demo rows as in `AccessTests`: De Vries (castricum-noord) resident a…05, case c…05, visit b…05;
/// Sanne (castricum-noord) case c…04, visit b…04; Joep (bergen) resident a…03, case c…03, carer 8…02.
@Suite struct SecurityTests {
    static let deVries = AccessTests.deVries, deVriesCase = AccessTests.deVriesCase, sanneCase = AccessTests.sanneCase
    static let joep = AccessTests.joep, joepCase = AccessTests.joepCase, joepsMother = AccessTests.joepsMother
    static let sanneVisit = AccessTests.demo("b0000000", 4)
    static let fatimaScopes = ["team:castricum-noord"]

    /// A server with the demo data, on SQLite or PostgreSQL: the rules live in SQL both run.
    static func start(_ store: StoreDialect) async throws -> TestServer {
        let server = try await TestServer.start(store: store)
        _ = try server.store.demo.load()
        return server
    }

    // MARK: 1. Conflict decisions

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func aConflictIsDecidedOnlyByADeviceThatMaySeeTheRowAndChangeTheColumn(store: StoreDialect) async throws {
        let server = try await Self.start(store)
        let bert = try server.replica("laptop bert", user: "bert", role: .consultant, scopes: ["team:bergen"])
        let office = try server.replica("office")
        for replica in [bert, office] { try await replica.sync() }
        try await bert.execute("UPDATE cases SET contact_person = 'Bert' WHERE id = ?", [.text(Self.joepCase)])
        try await office.execute("UPDATE cases SET contact_person = 'Anne' WHERE id = ?", [.text(Self.joepCase)])
        try await bert.sync()
        try await office.sync()
        let conflict = try #require(try server.store.conflicts.list(unresolvedOnly: true).first { $0.row == Self.joepCase })
        #expect(conflict.review && conflict.column == "contact_person")

        let attackers: [(String, String, String)] = [
            ("a consultant of another team", try server.token("laptop fatima", user: "fatima", role: .consultant, scopes: Self.fatimaScopes),
             "not_found"),
            ("a partner whose profile has no cases",
             try server.token("laptop joyce", user: "joyce", role: .partner, scopes: ["team:bergen"], profile: "mantelzorgcentrum"), "not_found"),
            ("an auditor who reads team Bergen", try server.token("laptop ruud", user: "ruud", role: .auditor, scopes: ["team:bergen"]),
             "read_only"),
        ]
        for (who, token, code) in attackers {
            let answer = try await Battery(server: server, token: token).push(node: .random(), changes: [],
                                                                                resolutions: [Resolution(conflict: conflict.id, resolution: "kept winner")])
            #expect(answer.status == 200, "\(who)")
            #expect((answer.body["resolved"] as? [Any] ?? []).isEmpty, "\(who): \(answer.body)")
            let refused = answer.body["refusedResolutions"] as? [[String: Any]] ?? []
            #expect(refused.first?["code"] as? String == code, "\(who): \(answer.body)")
            #expect(try server.store.conflicts.find(id: conflict.id)?.resolvedAt == nil, "\(who) resolved team Bergen's conflict")
        }

        // Through the library: the auditor's decision is refused and stays visible on the device.
        let ruud = try server.replica("laptop ruud 2", user: "ruud")
        try await ruud.sync()
        try ruud.resolve(conflict: conflict.id, .keepWinner, note: "niet aan mij")
        try await ruud.sync()
        #expect(try await ruud.query("SELECT code FROM _kt_resolutions WHERE conflict_id = ? AND state = 'refused'",
                               [.integer(conflict.id)]).rows.first?.first == .text("read_only"))
        #expect(try server.store.conflicts.find(id: conflict.id)?.resolvedAt == nil)

        // A fresh back-office replica: the conflict is still in the review queue, the cell as it was.
        let fresh = try server.replica("office 2")
        try await fresh.sync()
        #expect(try fresh.conflicts().first { $0.id == conflict.id }?.resolvedAt == nil)
        #expect(try fresh.value("cases", Self.joepCase, "contact_person") == .text("Anne"))

        // Bert, who may, decides it.
        try await bert.sync()
        try bert.resolve(conflict: conflict.id, .keepWinner)
        try await bert.sync()
        #expect(try server.store.conflicts.find(id: conflict.id)?.resolvedAt != nil)
        await server.stop()
    }

    // MARK: 2. Node binding

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func aDeviceWritesOnlyAsItsOwnReplicasNode(store: StoreDialect) async throws {
        let server = try await Self.start(store)
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: Self.fatimaScopes)
        try await fatima.sync()
        let note = newID()
        try await fatima.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, 'Fatima', 'Eerste gesprek.')",
                           [.text(note), .text(Self.sanneCase)])
        try await fatima.sync()  // her device is now bound to her replica's node

        // Her next writes, not yet sent; the change ids an attacker can predict from the feed.
        try await fatima.execute("UPDATE notes SET body = 'Tweede gesprek.' WHERE id = ?", [.text(note)])
        let hers = try fatima.pendingChanges(limit: 10).map(\.change)
        #expect(hers.count == 1)

        // A colleague's device sends changes under her node, with her next change ids.
        let sem = Battery(server: server, token: try server.token("laptop sem", user: "sem", role: .consultant, scopes: Self.fatimaScopes))
        let forged = hers.map { Change(id: $0.id, table: "notes", row: note, column: "body", value: .text("Vervalst."),
                                       version: $0.version, base: $0.base) }
        let asHer = try await sem.push(node: fatima.node, changes: forged)
        #expect(asHer.status == 409 && asHer.code == "node_mismatch", "\(asHer.body)")
        // Under his own node, but carrying her node in the versions and ids: refused per change.
        let own = NodeID.random()
        let mixed = try await sem.push(node: own, changes: forged)
        #expect(mixed.status == 200 && mixed.codes == ["node_mismatch"], "\(mixed.body)")

        // Her own write goes through, as it would have without him.
        let report = try await fatima.sync()
        let refusedOfHers = try fatima.status().rejectedChanges.map(\.message)
        #expect(report.pushed.applied == 1 && report.pushed.rejected == 0, "\(refusedOfHers)")
        #expect(try server.store.history(table: "notes", row: note, column: "body").allSatisfy { $0.deviceName == "laptop fatima" })

        // Two replicas initialised with one token: the second is told so, and keeps its write.
        let path = try temporaryDirectory("replica") + "/second.sqlite"
        let second = try Replica.create(path: path, dataModel: server.store.dataModel, serverURL: server.url, token: try fatima.token)
        try await second.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, 'Fatima', 'Op de tweede laptop.')",
                           [.text(newID()), .text(Self.sanneCase)])
        await #expect { try await second.sync() } throws: { error in
            guard case SyncError.server(409, "node_mismatch", let message) = error else { return false }
            return message.contains("laptop fatima")
        }
        #expect(try second.outboxCounts().pending > 0, "the second replica's write waits on it")

        let office = try server.replica("office")
        try await office.sync()
        #expect(try office.value("notes", note, "body") == .text("Tweede gesprek."))

        // Her first replica gone for good: the office releases the device, the second replica takes it over.
        _ = try server.store.accounts.releaseDevice("laptop fatima", actor: "test")
        #expect(try await second.sync().pushed.applied > 0)
        try await fatima.execute("UPDATE notes SET body = 'Van de oude laptop.' WHERE id = ?", [.text(note)])
        await #expect(throws: SyncError.self) { try await fatima.sync() }
        await server.stop()
    }

    /// A store from before decision 0017 binds each device to the node its history shows, so the
    /// first push after the upgrade cannot claim someone else's node.
    @Test func aStoreFromBeforeNodeBindingBindsDevicesToTheNodesOfTheirHistory() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        _ = try seedCase(on: laptop)
        try await laptop.sync()
        await server.stop()
        let path = server.directory + "/" + ServerStore.fileName
        let file = try SQLiteConnection(path: path)
        try file.execute("UPDATE devices SET node = NULL, node_high_water = 0; DELETE FROM meta WHERE key = 'nodes_bound'; DROP INDEX devices_by_node;")

        let reopened = try ServerStore(directory: server.directory, dataModel: server.store.dataModel)
        let device = try #require(try reopened.accounts.devices().first { $0.name == "laptop" })
        #expect(device.node == laptop.node.description)
        let attacker = try reopened.accounts.addDevice(name: "attacker", user: "office").device
        let claimed = Change(id: "\(laptop.node)-999999999999", table: "notes", row: newID(), column: "body", value: .text("x"),
                             version: CellVersion(hlc: HybridLogicalClock.timestamp(milliseconds: UInt64(Date().timeIntervalSince1970 * 1000)),
                                                  node: laptop.node), base: nil)
        #expect(throws: StoreRefusal.self) {
            try reopened.push([claimed], device: attacker.id, node: laptop.node,
                              access: Access(userID: "u", userName: "office", role: .backOffice, scopes: ["*"]))
        }
    }

    // MARK: 3. Back-dated writes

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func aWriteDatedBeforeAScopeChangeCountsOnlyWhileTheDeviceCouldNotHaveKnown(store: StoreDialect) async throws {
        let server = try await Self.start(store)
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: Self.fatimaScopes)
        let tablet = try server.replica("tablet fatima", user: "fatima")
        let office = try server.replica("office")
        for replica in [fatima, tablet, office] { try await replica.sync() }

        // Honest: a note written offline before the move, sent after it, arrives (DOMAIN scenario 7).
        let honest = newID()
        try await fatima.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, 'Fatima', 'Voor de overdracht.')",
                           [.text(honest), .text(Self.deVriesCase)])
        let beforeMove = UInt64(Date().timeIntervalSince1970 * 1000) - 1
        try await office.execute("UPDATE cases SET team = 'bergen' WHERE id = ?", [.text(Self.deVriesCase)])
        try await office.sync()
        // Her laptop sends that note and a later write, and learns nothing yet (push only).
        try await fatima.execute("UPDATE cases SET contact_person = 'Fatima' WHERE id = ?", [.text(Self.sanneCase)])
        let pushed = try await onThread { try SyncEngine(replica: fatima).push() }
        let refusedOfHers = try fatima.status().rejectedChanges.map(\.message)
        #expect(pushed.pushed.applied > 1 && pushed.pushed.rejected == 0, "\(refusedOfHers)")
        #expect(try server.store.inspection.cell(table: "notes", row: honest, column: "body")?.value == .text("Voor de overdracht."))

        func forgedNote(node: NodeID, serial: Int) -> [Change] {
            let row = newID(), version = CellVersion(hlc: HybridLogicalClock.timestamp(milliseconds: beforeMove - 1000), node: node)
            return [("case_id", CellValue.text(Self.deVriesCase)), ("author", .text("Fatima")), ("body", .text("Achteraf gedateerd."))]
                .enumerated().map { offset, cell in
                    Change(id: "\(node)-9\(String(format: "%011d", serial * 10 + offset))", table: "notes", row: row, column: cell.0,
                           value: cell.1, version: version, base: nil)
                }
        }
        var forgedRows: [String] = []
        // Under her own node, which has pushed a later version since.
        let ownNode = forgedNote(node: fatima.node, serial: 1)
        forgedRows.append(ownNode[0].row)
        let afterNewer = try await Battery(server: server, token: try fatima.token).push(node: fatima.node, changes: ownNode)
        #expect(afterNewer.codes == ["out_of_scope", "out_of_scope", "out_of_scope"], "\(afterNewer.body)")

        // From her tablet, which was sent the move (a pull) but never pushed.
        try await onThread { _ = try SyncEngine(replica: tablet).pull() }
        let informed = forgedNote(node: tablet.node, serial: 2)
        forgedRows.append(informed[0].row)
        let afterPull = try await Battery(server: server, token: try tablet.token).push(node: tablet.node, changes: informed)
        #expect(afterPull.codes == ["out_of_scope", "out_of_scope", "out_of_scope"], "\(afterPull.body)")

        // From a device registered after the move, with a fresh node.
        let fresh = NodeID.random()
        let newDevice = forgedNote(node: fresh, serial: 3)
        forgedRows.append(newDevice[0].row)
        let fromNew = try await Battery(server: server, token: try server.token("phone fatima", user: "fatima")).push(node: fresh, changes: newDevice)
        #expect(fromNew.codes == ["out_of_scope", "out_of_scope", "out_of_scope"], "\(fromNew.body)")

        // After `ktd admin scope remove`: a colleague's device that was told (it pulled) cannot back-date.
        let sem = try server.replica("laptop sem", user: "sem", role: .consultant, scopes: Self.fatimaScopes)
        try await sem.sync()
        let beforeRemoval = UInt64(Date().timeIntervalSince1970 * 1000) - 1
        _ = try server.store.accounts.removeScope("team:castricum-noord", from: "sem", actor: "test")
        try await sem.sync()
        let version = CellVersion(hlc: HybridLogicalClock.timestamp(milliseconds: beforeRemoval - 1000), node: sem.node)
        let removed = try await Battery(server: server, token: try sem.token).push(node: sem.node, changes: [
            Change(id: "\(sem.node)-900000000001", table: "cases", row: Self.sanneCase, column: "contact_person", value: .text("Sem"),
                   version: version, base: nil)])
        #expect(removed.codes == ["out_of_scope"], "\(removed.body)")

        // Team Bergen, the case's team now, sees the honest note and none of the forged ones.
        let bert = try server.replica("laptop bert", user: "bert", role: .consultant, scopes: ["team:bergen"])
        try await bert.sync()
        let notes = Set(try await bert.query("SELECT id FROM notes WHERE case_id = ?", [.text(Self.deVriesCase)]).rows.map { $0[0].description })
        #expect(notes.contains(honest))
        #expect(notes.isDisjoint(with: forgedRows))
        for row in forgedRows { #expect(try server.store.inspection.cellCount(table: "notes", row: row) == 0) }
        #expect(try server.store.inspection.cell(table: "cases", row: Self.sanneCase, column: "contact_person")?.value == .text("Fatima"))
        await server.stop()
    }

    // MARK: 4. Re-parenting

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func aRowMovesOnlyWhereItsWriterMayWriteBeforeAndAfter(store: StoreDialect) async throws {
        let server = try await Self.start(store)
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: Self.fatimaScopes)
        try await fatima.sync()
        let note = newID()
        try await fatima.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, 'Fatima', 'Over Sanne.')", [.text(note), .text(Self.sanneCase)])
        try await fatima.sync()

        // Her own note and visit, moved into team Bergen's case; her own case, handed to team Bergen.
        try await fatima.execute("UPDATE notes SET case_id = ? WHERE id = ?", [.text(Self.joepCase), .text(note)])
        try await fatima.execute("UPDATE visits SET case_id = ? WHERE id = ?", [.text(Self.joepCase), .text(Self.sanneVisit)])
        try await fatima.execute("UPDATE cases SET team = 'bergen' WHERE id = ?", [.text(Self.sanneCase)])
        let report = try await fatima.sync()
        #expect(report.pushed.applied == 0 && report.pushed.rejected == 3)
        #expect(try fatima.status().rejectedChanges.allSatisfy { $0.code == "out_of_scope" })

        #expect(try server.store.inspection.cell(table: "notes", row: note, column: "case_id")?.value == .text(Self.sanneCase))
        #expect(try server.store.inspection.cell(table: "visits", row: Self.sanneVisit, column: "case_id")?.value == .text(Self.sanneCase))
        #expect(try server.store.inspection.cell(table: "cases", row: Self.sanneCase, column: "team")?.value == .text("castricum-noord"))
        let bert = try server.replica("laptop bert", user: "bert", role: .consultant, scopes: ["team:bergen"])
        try await bert.sync()
        #expect(try await bert.query("SELECT count(*) FROM notes WHERE id = ?", [.text(note)]).rows[0][0] == .integer(0))
        #expect(try await bert.query("SELECT count(*) FROM visits WHERE id = ?", [.text(Self.sanneVisit)]).rows[0][0] == .integer(0))
        #expect(try await bert.query("SELECT count(*) FROM cases WHERE id = ?", [.text(Self.sanneCase)]).rows[0][0] == .integer(0))

        // The back office, who holds both teams, hands the case over.
        let office = try server.replica("office")
        try await office.sync()
        try await office.execute("UPDATE cases SET team = 'bergen' WHERE id = ?", [.text(Self.sanneCase)])
        #expect(try await office.sync().pushed.applied == 1)
        await server.stop()
    }

    // MARK: 5. Linking

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func aLinkToARowTheWriterMayNotSeeIsRefusedAndGivesNoAccess(store: StoreDialect) async throws {
        let server = try await Self.start(store)
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: Self.fatimaScopes)
        let office = try server.replica("office")
        for replica in [fatima, office] { try await replica.sync() }
        #expect(try !AccessTests().ids(fatima, "residents").contains(Self.joep))

        // A new case of her team for team Bergen's resident, and a care relation to Bergen's carer.
        let linked = newID(), relation = newID()
        try await fatima.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'castricum-noord', 'melding')",
                           [.text(linked), .text(Self.joep)])
        try await fatima.execute("INSERT INTO care_relations (id, carer_id, recipient_id) VALUES (?, ?, ?)",
                           [.text(relation), .text(Self.joepsMother), .text(Self.deVries)])
        let report = try await fatima.sync()
        let applied = report.pushed.applied
        #expect(applied == 0)
        #expect(try fatima.status().rejectedChanges.allSatisfy { $0.code == "out_of_scope" })
        #expect(try server.store.inspection.cellCount(table: "cases", row: linked) == 0, "nothing of the case is stored")
        #expect(try server.store.inspection.cellCount(table: "care_relations", row: relation) == 0)
        #expect(try !AccessTests().ids(fatima, "residents").contains(Self.joep), "Joep's name and BSN did not reach her")
        #expect(try !AccessTests().ids(fatima, "carers").contains(Self.joepsMother))

        // A resident she once saw, whose case moved away: no way back in through a new case.
        try await office.execute("UPDATE cases SET team = 'bergen' WHERE id = ?", [.text(Self.deVriesCase)])
        try await office.sync()
        try await fatima.sync()
        #expect(try !AccessTests().ids(fatima, "residents").contains(Self.deVries))
        let again = newID()
        try await fatima.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'castricum-noord', 'melding')",
                           [.text(again), .text(Self.deVries)])
        try await fatima.sync()
        #expect(try server.store.inspection.cellCount(table: "cases", row: again) == 0)
        #expect(try !AccessTests().ids(fatima, "residents").contains(Self.deVries))

        // The back office, who sees both, links them.
        try await office.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'castricum-noord', 'melding')",
                           [.text(newID()), .text(Self.joep)])
        #expect(try await office.sync().pushed.rejected == 0)
        await server.stop()
    }

    // MARK: 6. Erasure against an offline device

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func writesAboutAnErasedResidentFromAnOfflineDeviceAreRefusedAndPurged(store: StoreDialect) async throws {
        let server = try await Self.start(store)
        let office = try server.replica("office")
        try await office.sync()
        let secondCase = newID()
        try await office.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'castricum-noord', 'melding')",
                           [.text(secondCase), .text(Self.deVries)])
        try await office.sync()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: Self.fatimaScopes)
        try await fatima.sync()
        #expect(try fatima.value("cases", secondCase, "team") == .text("castricum-noord"))

        // She goes offline; the office erases De Vries.
        _ = try server.store.erasure.eraseResident(Self.deVries, actor: "test")
        let note = newID(), visit = newID(), newCase = newID(), plan = newID(), goal = newID()
        try await fatima.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, 'Fatima', 'Mevrouw De Vries belde.')",
                           [.text(note), .text(Self.deVriesCase)])
        try await fatima.execute("INSERT INTO visits (id, case_id, happened_at) VALUES (?, ?, '2026-11-20T10:00:00Z')", [.text(visit), .text(secondCase)])
        try await fatima.execute("INSERT INTO cases (id, resident_id, team, status, question) VALUES (?, ?, 'castricum-noord', 'melding', 'De Vries opnieuw')",
                           [.text(newCase), .text(Self.deVries)])
        try await fatima.execute("INSERT INTO plans (id, case_id, status) VALUES (?, ?, 'draft')", [.text(plan), .text(newCase)])
        try await fatima.execute("INSERT INTO goals (id, plan_id, goal) VALUES (?, ?, 'Boodschappen')", [.text(goal), .text(plan)])
        let report = try await fatima.sync()
        #expect(report.pushed.applied == 0 && report.pushed.superseded == 0 && report.pushed.conflicts == 0)
        #expect(report.pushed.rejected == report.pushed.total && report.pushed.total > 0)

        let written: [(String, String)] = [("notes", note), ("visits", visit), ("cases", newCase), ("plans", plan), ("goals", goal)]
        for (table, row) in written {
            #expect(try server.store.inspection.cellCount(table: table, row: row) == 0, "\(table) stored")
            #expect(try server.store.history(table: table, row: row).isEmpty, "\(table) in the history")
            #expect(try await fatima.query("SELECT count(*) FROM \"\(table)\" WHERE id = ?", [.text(row)]).rows[0][0] == .integer(0), "\(table) left on her laptop")
        }
        #expect(try server.store.conflicts.list().allSatisfy { conflict in !written.contains { $0.1 == conflict.row } })
        let left = try fatima.outbox().map { "\($0.change.table) \($0.code ?? "")" }
        #expect(left.isEmpty, "\(left)")

        let fresh = try server.replica("office 2")
        try await fresh.sync()
        for (table, row) in written + [("residents", Self.deVries), ("cases", Self.deVriesCase), ("cases", secondCase)] {
            #expect(try await fresh.query("SELECT count(*) FROM \"\(table)\" WHERE id = ?", [.text(row)]).rows[0][0] == .integer(0), "\(table) reached a fresh replica")
        }
        await server.stop()
    }

    // MARK: 7. Epochs

    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func aCursorNoServerHandedOutIsRefusedForThatDeviceAlone(store: StoreDialect) async throws {
        let server = try await Self.start(store)
        let office = try server.replica("office")
        try await office.sync()
        let epoch = try office.serverEpoch
        let attacker = Battery(server: server, token: try server.token("laptop fatima", user: "fatima", role: .consultant, scopes: Self.fatimaScopes))
        let answer = try await attacker.send("GET", "/v1/pull", query: [("since", String(Int64.max))])
        #expect(answer.status == 400 && answer.code == "cursor_ahead", "\(answer.body)")
        let forgedProof = try await attacker.send("GET", "/v1/pull", query: [("since", "1000000"), ("proof", String(repeating: "0", count: 32))])
        #expect(forgedProof.status == 400 && forgedProof.code == "cursor_ahead")

        // Everyone else carries on where they were.
        try await office.execute("UPDATE cases SET contact_person = 'Anne' WHERE id = ?", [.text(Self.sanneCase)])
        let next = try await office.sync()
        #expect(next.pulled.rowsEvicted == 0 && next.pulled.changesRequeued == 0 && next.pulled.cellsReceived <= 1)
        #expect(try office.serverEpoch == epoch)
        #expect(try !server.store.audit.entries().contains { $0.action == "epoch.rotate" })
        await server.stop()
    }

    // MARK: 8. Malformed HTTP

    @Test func malformedHTTPIsTheClientsFaultAndAnswersWithACode() async throws {
        let server = try await TestServer.start(maxRequestBytes: 1024 * 1024)
        let token = try server.token("laptop")
        let head = "POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\n"
        let chunked = head + "Transfer-Encoding: chunked\r\n\r\n"
        for (name, request) in [
            ("chunk size zz", chunked + "zz\r\n{}\r\n0\r\n\r\n"),
            ("chunk size 2^80", chunked + "100000000000000000000\r\n{}\r\n0\r\n\r\n"),
            ("chunk size -1", chunked + "-1\r\n{}\r\n0\r\n\r\n"),
            ("empty chunk size line", chunked + "\r\n{}\r\n0\r\n\r\n"),
            ("chunk size with a trailing space", chunked + "2 \r\n{}\r\n0\r\n\r\n"),
            ("no CRLF after the chunk data", chunked + "2\r\n{}0\r\n\r\n"),
            ("a header line without a colon", "GET /v1/hello HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"),
        ] {
            let (status, text) = try await Self.raw(server, request)
            #expect(status == 400, "\(name): \(text)")
            #expect(text.contains(#""code":"malformed_http""#), "\(name): \(text)")
        }
        let (putStatus, putText) = try await Self.raw(server, "PUT /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 0\r\n\r\n")
        #expect(putStatus == 405 && putText.contains("method_not_allowed") && putText.lowercased().contains("allow: post"), "\(putText)")
        // A declared length far beyond the limit is answered at once, not when the idle timeout (75 s)
        // ends the wait for the body (the raw connection gives up after 60 s).
        let (bigStatus, bigText) = try await Self.raw(server, head + "Content-Length: 1000000000000\r\n\r\n{}")
        #expect(bigStatus == 413 && bigText.contains("request_too_large"), "\(bigText)")
        // The server still serves a real device.
        let laptop = try server.replica("laptop 2")
        _ = try seedCase(on: laptop)
        #expect(try await laptop.sync().pushed.applied > 0)
        await server.stop()
    }

    static func raw(_ server: TestServer, _ request: String) async throws -> (Int?, String) {
        try await onThread {
            // The store's thread pool is shared by every server of a parallel test run: allow for a busy one.
            let connection = try RawConnection(port: server.port, timeoutSeconds: 60)
            connection.send(Array(request.utf8))
            return connection.response()
        }
    }
}

/// Requests as the outside battery sent them: well-formed HTTP with a valid token, whatever JSON.
struct Battery {
    let server: TestServer
    let token: String

    struct Answer {
        var status: Int
        var body: [String: Any]
        /// The error code of a refused request.
        var code: String? { (body["error"] as? [String: Any])?["code"] as? String }
        /// The code of each change's result (`applied` etc. for changes that were not refused).
        var codes: [String] {
            (body["results"] as? [[String: Any]] ?? []).map { $0["code"] as? String ?? $0["status"] as? String ?? "?" }
        }
    }

    func send(_ method: String, _ path: String, body: Data? = nil, query: [(String, String)] = []) async throws -> Answer {
        var transport = CurlTransport(baseURL: server.url, token: token)
        transport.headers = ["Content-Type: application/json"]
        let configured = transport
        let exchange = try await onThread { try configured.send(method: method, path: path, query: query, body: body) }
        let json = (try? JSONSerialization.jsonObject(with: exchange.body)) as? [String: Any] ?? [:]
        return Answer(status: exchange.status, body: json)
    }

    func push(node: NodeID, changes: [Change], resolutions: [Resolution] = []) async throws -> Answer {
        let request = PushRequest(node: node, schemaVersion: server.store.dataModel.version, changes: changes,
                                  resolutions: resolutions.isEmpty ? nil : resolutions)
        return try await send("POST", "/v1/push", body: Data(FeedCoding.encode(request)))
    }
}
