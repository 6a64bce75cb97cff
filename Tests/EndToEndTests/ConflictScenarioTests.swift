import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// The conflicts that really happen (docs/domain.md, "Conflicts that really happen"), end to end: a real
/// server, a field laptop and the office, with the final state checked everywhere.
/// Scenario 8 (delete vs edit) and 9 (a clock a year ahead) are in SyncScenarioTests (c) and (f);
/// scenario 7 (a case moving to another team) is AccessTests.aCaseMovedToAnotherTeamLeavesTheOldTeamAndReachesTheNew.
@Suite struct ConflictScenarioTests {
    struct Fleet {
        let server: TestServer
        let laptop: Replica
        let office: Replica

        static func start() async throws -> Fleet {
            let server = try await TestServer.start()
            _ = try server.store.demo.load()
            let clock = TestClock()  // shared: the order of writes in a test is the order of their versions
            let fleet = Fleet(server: server, laptop: try server.replica("laptop", clock: clock), office: try server.replica("office", clock: clock))
            try await fleet.syncAll()
            return fleet
        }

        func syncAll() async throws {
            try await laptop.sync()
            try await office.sync()
            try await laptop.sync()
        }

        func expectSameEverywhere() throws {
            #expect(try laptop.snapshot() == office.snapshot())
        }
    }

    static let deVriesCase = DemoData.deVriesCase
    static let householdHelp = "90000000-0000-4000-8000-000000000001"
    static let tarikPlan = "10000000-0000-4000-8000-000000000001"

    @Test("1: plan and notes offline, provision end date at the office: different cells, both survive")
    func differentCellsBothSurvive() async throws {
        let fleet = try await Fleet.start()
        try await fleet.laptop.execute("UPDATE plans SET agreed_with = 'Tarik en Maryam', evaluation_due = '2027-03-01' WHERE id = ?", [.text(Self.tarikPlan)])
        try await fleet.laptop.execute("INSERT INTO notes (id, case_id, body) VALUES (?, 'c0000000-0000-4000-8000-000000000001', 'Plan besproken aan de keukentafel')", [.text(newID())])
        try await fleet.office.execute("UPDATE provisions SET end_date = '2027-12-31' WHERE id = ?", [.text(Self.householdHelp)])
        try await fleet.syncAll()
        try fleet.expectSameEverywhere()
        #expect(try fleet.office.value("plans", Self.tarikPlan, "agreed_with") == .text("Tarik en Maryam"))
        #expect(try fleet.laptop.value("provisions", Self.householdHelp, "end_date") == .text("2027-12-31"))
        #expect(try fleet.server.store.conflicts.list().isEmpty)
        await fleet.server.stop()
    }

    @Test("2: the same cell set twice (status, contact person, provision status): one winner, the other kept for review")
    func sameCellOneWinnerReviewed() async throws {
        let fleet = try await Fleet.start()
        try await fleet.laptop.execute("UPDATE cases SET status = 'beschikking', contact_person = 'Fatima Yilmaz (expert)' WHERE id = ?", [.text(Self.deVriesCase)])
        try await fleet.laptop.execute("UPDATE provisions SET status = 'granted' WHERE id = ?", [.text(Self.householdHelp)])
        try await fleet.office.execute("UPDATE cases SET status = 'levering', contact_person = 'Anne de Wit' WHERE id = ?", [.text(Self.deVriesCase)])
        try await fleet.office.execute("UPDATE provisions SET status = 'delivering' WHERE id = ?", [.text(Self.householdHelp)])
        try await fleet.syncAll()
        try fleet.expectSameEverywhere()
        #expect(try fleet.laptop.value("cases", Self.deVriesCase, "status") == .text("levering"))
        #expect(try fleet.laptop.value("cases", Self.deVriesCase, "contact_person") == .text("Anne de Wit"))
        let conflicts = try fleet.server.store.conflicts.list()
        #expect(Set(conflicts.map(\.column)) == ["status", "contact_person"])
        #expect(conflicts.count == 3)
        #expect(conflicts.allSatisfy { $0.review && $0.loserVersion.node == fleet.laptop.node })
        #expect(Set(conflicts.map(\.loserValue)) == [.text("beschikking"), .text("Fatima Yilmaz (expert)"), .text("granted")])
        #expect(try fleet.laptop.status().lostWrites == 3)
        await fleet.server.stop()
    }

    @Test("3: a joint home visit, both write notes offline: two rows, no conflict")
    func jointVisitNotesNeverConflict() async throws {
        let fleet = try await Fleet.start()
        let youthCase = "c0000000-0000-4000-8000-000000000001"
        for (replica, author) in [(fleet.laptop, "Sanne Bakker"), (fleet.office, "Jeugd- en gezinscoach")] {
            try await replica.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, ?, 'Samen op huisbezoek geweest')",
                                [.text(newID()), .text(youthCase), .text(author)])
            try await replica.execute("INSERT INTO visits (id, case_id, happened_at, kind) VALUES (?, ?, '2026-11-23T10:00:00Z', 'home_visit')",
                                [.text(newID()), .text(youthCase)])
        }
        try await fleet.syncAll()
        try fleet.expectSameEverywhere()
        #expect(try await fleet.laptop.query("SELECT count(*) FROM notes WHERE case_id = ?", [.text(youthCase)]).rows.first?.first == .integer(3))
        #expect(try fleet.server.store.conflicts.list().isEmpty)
        await fleet.server.stop()
    }

    @Test("4: a case closed offline while a colleague records a safety signal: the signal survives")
    func closureAndSignalBothSurvive() async throws {
        let fleet = try await Fleet.start()
        let sanneCase = "c0000000-0000-4000-8000-000000000004"
        try await fleet.laptop.execute("UPDATE cases SET status = 'gesloten', closed_date = '2026-11-23', closed_reason = 'goals_met' WHERE id = ?", [.text(sanneCase)])
        let signal = newID()
        try await fleet.office.execute("INSERT INTO signals (id, case_id, signal_type, severity, note) VALUES (?, ?, 'housing_risk', 'high', 'Dreigende uitzetting zus')",
                                 [.text(signal), .text(sanneCase)])
        try await fleet.syncAll()
        try fleet.expectSameEverywhere()
        #expect(try fleet.office.value("cases", sanneCase, "status") == .text("gesloten"))
        #expect(try fleet.laptop.value("signals", signal, "severity") == .text("high"))
        await fleet.server.stop()
    }

    @Test("5: an appreciation and an overload assessment survive; a second appreciation for the same year goes to review")
    func duplicateAppreciationIsReviewed() async throws {
        let fleet = try await Fleet.start()
        let carer = "80000000-0000-4000-8000-000000000002"
        let first = newID(), second = newID(), load = newID()
        try await fleet.office.execute("INSERT INTO appreciations (id, carer_id, year, status, amount) VALUES (?, ?, 2026, 'granted', 250)", [.text(first), .text(carer)])
        try await fleet.laptop.execute("INSERT INTO carer_load_assessments (id, carer_id, assessed_on, load) VALUES (?, ?, '2026-11-23', 'overloaded')",
                                 [.text(load), .text(carer)])
        try await fleet.laptop.execute("INSERT INTO appreciations (id, carer_id, year, status) VALUES (?, ?, 2026, 'requested')", [.text(second), .text(carer)])
        try await fleet.syncAll()
        try fleet.expectSameEverywhere()
        #expect(try fleet.laptop.rowCount("appreciations") == 2, "nothing typed is dropped")
        #expect(try fleet.office.value("carer_load_assessments", load, "load") == .text("overloaded"))
        let duplicates = try fleet.server.store.conflicts.list().filter { $0.rule == "duplicate" }
        try #require(duplicates.count == 1)
        #expect(duplicates[0].table == "appreciations" && duplicates[0].column == "carer_id+year" && duplicates[0].review)
        #expect(Set([duplicates[0].winnerValue, duplicates[0].loserValue]) == [.text(first), .text(second)])
        #expect(try fleet.laptop.conflicts().contains { $0.rule == "duplicate" })
        // Another year is no duplicate.
        try await fleet.office.execute("INSERT INTO appreciations (id, carer_id, year) VALUES (?, ?, 2027)", [.text(newID()), .text(carer)])
        try await fleet.syncAll()
        #expect(try fleet.server.store.conflicts.list().filter { $0.rule == "duplicate" }.count == 1)
        await fleet.server.stop()
    }

    @Test("6: a volunteer matched to two residents at once by two people is surfaced for review")
    func doubleMatchIsReviewed() async throws {
        let fleet = try await Fleet.start()
        let volunteer = "60000000-0000-4000-8000-000000000001"  // Kees, already actively matched to Mevrouw De Vries
        let request = newID()
        try await fleet.laptop.execute("INSERT INTO help_requests (id, resident_id, kind, status) VALUES (?, 'a0000000-0000-4000-8000-000000000004', 'buddy', 'open')",
                                 [.text(request)])
        try await fleet.laptop.execute("INSERT INTO matches (id, volunteer_id, help_request_id, status) VALUES (?, ?, ?, 'proposed')",
                                 [.text(newID()), .text(volunteer), .text(request)])
        try await fleet.syncAll()
        let duplicates = try fleet.server.store.conflicts.list().filter { $0.rule == "duplicate" && $0.table == "matches" }
        #expect(duplicates.count == 1)
        #expect(try fleet.office.conflicts().contains { $0.rule == "duplicate" && $0.review })
        await fleet.server.stop()
    }

    @Test func aSignedPlanRefusesLaterChangesAndKeepsThem() async throws {
        let fleet = try await Fleet.start()
        try await fleet.office.execute("UPDATE plans SET signed_at = '2026-11-20T14:00:00Z', status = 'signed' WHERE id = ?", [.text(Self.tarikPlan)])
        try await fleet.laptop.execute("UPDATE plans SET signed_at = '2026-11-22T09:00:00Z' WHERE id = ?", [.text(Self.tarikPlan)])  // offline, before it knew
        try await fleet.office.sync()
        let report = try await fleet.laptop.sync()
        #expect(report.pushed.conflicts == 1)
        try await fleet.office.sync()
        try fleet.expectSameEverywhere()
        #expect(try fleet.laptop.value("plans", Self.tarikPlan, "signed_at") == .text("2026-11-20T14:00:00Z"))
        let conflict = try #require(try fleet.server.store.conflicts.list().first { $0.rule == "immutable" })
        #expect(conflict.loserValue == .text("2026-11-22T09:00:00Z"))
        // Locally, a signed plan now refuses a change at once.
        #expect(throws: (any Error).self) {
            try fleet.laptop.execute("UPDATE plans SET signed_at = '2026-12-01T00:00:00Z' WHERE id = ?", [.text(Self.tarikPlan)])
        }
        await fleet.server.stop()
    }

    @Test func aLosingWriteRestoredWithOneResolveReachesEveryReplica() async throws {
        let fleet = try await Fleet.start()
        let third = try fleet.server.replica("tablet")
        try await third.sync()
        try await fleet.laptop.execute("UPDATE cases SET question = 'Traplift én hulp bij douchen' WHERE id = ?", [.text(Self.deVriesCase)])
        try await fleet.office.execute("UPDATE cases SET question = 'Traplift' WHERE id = ?", [.text(Self.deVriesCase)])
        try await fleet.syncAll()
        let conflict = try #require(try fleet.laptop.conflicts().first { $0.column == "question" })
        #expect(conflict.loserValue == .text("Traplift én hulp bij douchen"))

        try fleet.laptop.resolve(conflict: conflict.id, .restoreLoser, note: "mevrouw vroeg om beide")
        #expect(throws: ResolveError.self) { try fleet.laptop.resolve(conflict: conflict.id, .keepWinner) }
        let sent = try await fleet.laptop.sync()
        #expect(sent.resolutionsSent == 1)
        try await fleet.office.sync()
        try await third.sync()
        for replica in [fleet.laptop, fleet.office, third] {
            #expect(try replica.value("cases", Self.deVriesCase, "question") == .text("Traplift én hulp bij douchen"))
            let record = try #require(try replica.conflicts().first { $0.id == conflict.id })
            #expect(record.resolvedAt != nil)
            #expect(record.resolution?.hasPrefix("restored loser") == true)
        }
        #expect(try fleet.server.store.conflicts.find(id: conflict.id)?.resolvedBy != nil)
        await fleet.server.stop()
    }

    @Test func theOfficeResolvesFromTheServerStore() async throws {
        let fleet = try await Fleet.start()
        try await fleet.laptop.execute("UPDATE cases SET contact_person = 'Fatima' WHERE id = ?", [.text(Self.deVriesCase)])
        try await fleet.office.execute("UPDATE cases SET contact_person = 'Anne' WHERE id = ?", [.text(Self.deVriesCase)])
        try await fleet.syncAll()
        let conflict = try #require(try fleet.server.store.conflicts.list().first)
        _ = try fleet.server.store.conflicts.resolve(id: conflict.id, .value(.text("Fatima en Anne")), by: "teamleider", note: "duo")
        try await fleet.syncAll()
        try fleet.expectSameEverywhere()
        #expect(try fleet.laptop.value("cases", Self.deVriesCase, "contact_person") == .text("Fatima en Anne"))
        #expect(try fleet.laptop.conflicts().first { $0.id == conflict.id }?.resolution == "new value (teamleider): duo")
        await fleet.server.stop()
    }

    @Test func historyShowsTheLifeOfACellAcrossThreeDevices() async throws {
        let fleet = try await Fleet.start()
        let third = try fleet.server.replica("tablet")
        for (replica, value) in [(fleet.laptop, "onderzoek"), (fleet.office, "plan"), (third, "beschikking")] {
            try await replica.sync()  // each starts from what the one before wrote
            try await replica.execute("UPDATE cases SET status = ? WHERE id = ?", [.text(value), .text(Self.deVriesCase)])
            try await replica.sync()
        }
        try await fleet.laptop.sync()
        let engine = try SyncEngine(replica: fleet.laptop)
        let history = try await onThread { try engine.history(table: "cases", row: Self.deVriesCase, column: "status") }
        #expect(history.map(\.value) == [.text("aanvraag"), .text("onderzoek"), .text("plan"), .text("beschikking")])
        #expect(history.allSatisfy { $0.status == "applied" }, "each writer saw the one before: no conflicts")
        #expect(history.compactMap(\.deviceName) == ["laptop", "office", "tablet"], "the demo write has no device name")
        #expect(history.allSatisfy { !$0.receivedAt.isEmpty })
        await fleet.server.stop()
    }

    @Test func conflictsAreFoundByUserAndDeviceInTheFieldAndAtTheOffice() async throws {
        let server = try await TestServer.start()
        _ = try server.store.demo.load()
        let clock = TestClock()
        let fatima = try server.replica("laptop fatima", clock: clock, user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let anne = try server.replica("desk anne", clock: clock, user: "anne", role: .backOffice, scopes: ["*"])
        for replica in [fatima, anne] { try await replica.sync() }
        try await fatima.execute("UPDATE cases SET contact_person = 'Fatima' WHERE id = ?", [.text(Self.deVriesCase)])
        try await anne.execute("UPDATE cases SET contact_person = 'Anne' WHERE id = ?", [.text(Self.deVriesCase)])
        try await fatima.sync()
        try await anne.sync()
        try await fatima.sync()

        let onServer = try server.store.conflicts.list()
        #expect(onServer.count == 1)
        let record = try #require(onServer.first)
        #expect(record.winnerUser == "anne" && record.loserUser == "fatima")
        for filter in [ConflictFilter(user: "fatima"), ConflictFilter(user: "anne"), ConflictFilter(device: "laptop fatima"),
                       ConflictFilter(table: "cases", row: String(Self.deVriesCase.prefix(8)), unresolvedOnly: true, reviewOnly: true)] {
            #expect(onServer.filter(filter.matches).count == 1, "\(filter)")
            #expect(try fatima.conflicts().filter(filter.matches).count == 1, "the device sees the same: \(filter)")
        }
        for filter in [ConflictFilter(user: "ruud"), ConflictFilter(device: "office"), ConflictFilter(table: "notes"),
                       ConflictFilter(since: "2999-01-01")] {
            #expect(onServer.filter(filter.matches).isEmpty, "\(filter)")
        }
        await server.stop()
    }
}
