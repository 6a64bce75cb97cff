import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// Who may see and change what (issue 5), end to end on the demo data: a real server and replicas
/// of users with different roles and scopes.
///
/// Demo rows used: De Vries (castricum-noord) — resident a…05, case c…05, visit b…05, note d…05,
/// provisions 9…01/02, carer Els 8…01 with care relation 7…01, help request 5…01 and match 4…01;
/// Sanne (castricum-noord) case c…04; Joep (bergen) — resident a…03, case c…03, carer 8…02 with
/// relation 7…02 and load assessment 3…01; Tarik (heiloo) case c…01.
@Suite struct AccessTests {
    static func demo(_ prefix: String, _ n: Int) -> String { "\(prefix)-0000-4000-8000-\(String(format: "%012d", n))" }
    static let deVries = demo("a0000000", 5), deVriesCase = demo("c0000000", 5), sanneCase = demo("c0000000", 4)
    static let joep = demo("a0000000", 3), joepCase = demo("c0000000", 3), tarikCase = demo("c0000000", 1)
    static let els = demo("80000000", 1), joepsMother = demo("80000000", 2)

    static func start() async throws -> TestServer {
        let server = try await TestServer.start()
        _ = try server.store.demo.load()
        return server
    }

    func ids(_ replica: Replica, _ table: String) throws -> Set<String> {
        Set(try replica.query("SELECT id FROM \"\(table)\"").rows.map { $0[0].description })
    }

    @Test func aConsultantReceivesOnlyHerTeamsRowsAndChangesNothingElsewhere() async throws {
        let server = try await Self.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        try await fatima.sync()

        #expect(try ids(fatima, "cases") == [Self.sanneCase, Self.deVriesCase])
        #expect(try ids(fatima, "residents") == [Self.deVries, Self.demo("a0000000", 4)], "residents through their cases")
        #expect(try ids(fatima, "visits") == [Self.demo("b0000000", 4), Self.demo("b0000000", 5)], "visits through their case")
        #expect(try ids(fatima, "carers") == [Self.els], "a carer where the resident cared for is visible")
        #expect(try ids(fatima, "matches") == [Self.demo("40000000", 1)], "match → help request → resident → case")
        #expect(try fatima.rowCount("carer_load_assessments") == 0, "Joep's carer's load")
        #expect(try fatima.rowCount("plans") == 0, "Tarik's plan")
        #expect(try fatima.rowCount("volunteers") == 0, "volunteers are scoped by municipality, which she lacks")
        #expect(try fatima.rowCount("teams") == 5, "reference data is global")

        // She writes into Tarik's case (a row that exists elsewhere) and adds a visit to it.
        try await fatima.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'castricum-noord', 'gesloten')",
                           [.text(Self.tarikCase), .text(Self.deVries)])
        let visit = newID()
        try await fatima.execute("INSERT INTO visits (id, case_id, happened_at) VALUES (?, ?, '2026-11-20T10:00:00Z')",
                           [.text(visit), .text(Self.tarikCase)])
        let report = try await fatima.sync()
        #expect(report.pushed.applied == 0)
        #expect(report.stillRejected == report.pushed.rejected && report.pushed.rejected > 0)
        let status = try fatima.status()
        #expect(status.rejectedChanges.allSatisfy { $0.code == "out_of_scope" }, "\(status.rejectedChanges.map(\.code))")
        #expect(status.rejectedChanges.count == report.pushed.rejected, "the refused writes stay visible on the device")
        #expect(try server.store.inspection.cell(table: "cases", row: Self.tarikCase, column: "team")?.value == .text("heiloo"))
        #expect(try server.store.inspection.cell(table: "cases", row: Self.tarikCase, column: "status")?.value != .text("gesloten"))
        #expect(try server.store.inspection.cell(table: "visits", row: visit, column: "case_id") == nil, "nothing of the new visit was stored")

        // Reading another team's history answers nothing.
        let history = try await onThread { try SyncEngine(replica: fatima).history(table: "cases", row: Self.tarikCase) }
        #expect(history.isEmpty)
        await server.stop()
    }

    /// A batch that creates a row outside the writer's scopes is undone and applied again without it
    /// (the new row is judged after the batch). The rows the push read before applying are used by one
    /// attempt only: the second reads them again, and the batch's other changes are stored once.
    @Test func aBatchUndoneForANewRowOutsideTheScopesStoresItsOtherChangesOnce() async throws {
        let server = try await Self.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        try await fatima.sync()
        let before = try #require(try server.store.inspection.cell(table: "cases", row: Self.sanneCase, column: "status"))
        let outside = newID()
        try fatima.transaction {
            try fatima.execute("UPDATE cases SET status = 'evaluatie', contact_person = 'Fatima' WHERE id = ?", [.text(Self.sanneCase)])
            try fatima.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'heiloo', 'melding')",
                               [.text(outside), .text(Self.deVries)])
        }
        let report = try await fatima.sync()
        #expect(report.pushed.applied == 2, "the two cells of Sanne's case")
        #expect(try report.pushed.rejected > 0 && fatima.status().rejectedChanges.allSatisfy { $0.code == "out_of_scope" })
        let status = try #require(try server.store.inspection.cell(table: "cases", row: Self.sanneCase, column: "status"))
        #expect(status.value == .text("evaluatie") && status.version > before.version)
        #expect(try server.store.inspection.cell(table: "cases", row: Self.sanneCase, column: "contact_person")?.value == .text("Fatima"))
        #expect(try server.store.inspection.cell(table: "cases", row: outside, column: "team") == nil, "nothing of the new case was stored")
        let history = try await onThread { try SyncEngine(replica: fatima).history(table: "cases", row: Self.sanneCase) }
        #expect(history.filter { $0.value == .text("evaluatie") }.count == 1, "stored once: \(history.map(\.changeID))")
        // The office sees the change once, as any other.
        let office = try server.replica("office desk", user: "office", role: .backOffice, scopes: ["*"])
        try await office.sync()
        #expect(try office.value("cases", Self.sanneCase, "status") == .text("evaluatie"))
        #expect(try office.value("cases", outside, "team") == nil)
        await server.stop()
    }

    /// The office pushes a visit before its case (two syncs). The team's laptop, whose cursor already
    /// passed the visit it could not see, receives it once the case arrives; the case, new in its
    /// push, is sent once. (Rescoping skips its reads for rows new in a push; rows older than the push
    /// must still be sent again.)
    @Test func aVisitPushedBeforeItsCaseReachesTheTeamWhenTheCaseArrives() async throws {
        let server = try await Self.start()
        let office = try server.replica("office")
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        try await office.sync()
        try await fatima.sync()

        let caseID = newID(), visitID = newID()
        try await office.execute("INSERT INTO visits (id, case_id, happened_at) VALUES (?, ?, '2026-11-20T10:00:00Z')",
                           [.text(visitID), .text(caseID)])
        #expect(try await office.sync().pushed.applied > 0)
        #expect(try await fatima.sync().pulled.cellsApplied == 0, "a visit of no known case is in no team")

        try await office.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'castricum-noord', 'melding')",
                           [.text(caseID), .text(Self.deVries)])
        #expect(try await office.sync().pushed.applied > 0)
        let report = try await fatima.sync()
        #expect(try ids(fatima, "visits").contains(visitID), "the visit follows its case into the team")
        #expect(try ids(fatima, "cases").contains(caseID))
        let caseCells = try server.store.inspection.cellCount(table: "cases", row: caseID)
        let visitCells = try server.store.inspection.cellCount(table: "visits", row: visitID)
        #expect(report.pulled.cellsApplied == caseCells + visitCells, "each cell once: \(report.pulled.cellsApplied)")
        await server.stop()
    }

    @Test func aResidentWithCasesInTwoTeamsIsVisibleToBothAndToNobodyElse() async throws {
        let server = try await Self.start()
        let office = try server.replica("office")
        try await office.sync()
        // Joep (Bergen) also gets a case at Heiloo; his mother cares for him.
        let second = newID()
        try await office.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'heiloo', 'melding')",
                           [.text(second), .text(Self.joep)])
        try await office.sync()
        var seen: [String: Set<String>] = [:]
        var replicas: [String: Replica] = [:]
        for team in ["bergen", "heiloo", "uitgeest"] {
            let replica = try server.replica("laptop \(team)", user: team, role: .consultant, scopes: ["team:\(team)"])
            replicas[team] = replica
            try await replica.sync()
            seen[team] = try ids(replica, "residents")
            #expect(try ids(replica, "carers").contains(Self.joepsMother) == (team != "uitgeest"), "\(team): a carer goes where the resident goes")
        }
        #expect(seen["bergen"]?.contains(Self.joep) == true)
        #expect(seen["heiloo"]?.contains(Self.joep) == true)
        #expect(seen["uitgeest"]?.contains(Self.joep) == false)
        // The Heiloo case was opened for the wrong person: it now points at Tarik. Joep, and his mother
        // with him, leave Heiloo's devices; Bergen keeps both.
        try await office.execute("UPDATE cases SET resident_id = ? WHERE id = ?", [.text(Self.demo("a0000000", 1)), .text(second)])
        try await office.sync()
        let heiloo = try #require(replicas["heiloo"]), bergen = try #require(replicas["bergen"])
        let moved = try await heiloo.sync()
        #expect(moved.pulled.rowsEvicted >= 3, "Joep, his mother, their care relation")
        #expect(try !ids(heiloo, "residents").contains(Self.joep))
        #expect(try !ids(heiloo, "carers").contains(Self.joepsMother))
        #expect(try ids(heiloo, "cases").contains(second))
        try await bergen.sync()
        #expect(try ids(bergen, "residents").contains(Self.joep) && ids(bergen, "carers").contains(Self.joepsMother))
        await server.stop()
    }

    /// DOMAIN scenario 7: a case moves to another team while the old team's consultant is offline
    /// writing notes. Her notes written before the move arrive; the old team's devices lose the case
    /// and everything hanging off it; the new team receives it, and only it.
    @Test func aCaseMovedToAnotherTeamLeavesTheOldTeamAndReachesTheNew() async throws {
        let server = try await Self.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let bert = try server.replica("laptop bert", user: "bert", role: .consultant, scopes: ["team:bergen"])
        let office = try server.replica("office")
        for replica in [fatima, bert, office] { try await replica.sync() }
        #expect(try !ids(bert, "cases").contains(Self.deVriesCase))
        let bertsCellsBefore = try bert.knownCellCount()

        // Offline at the kitchen table: a note, written before the move.
        let before = newID()
        try await fatima.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, 'Fatima', 'Dochter regelt de boodschappen.')",
                           [.text(before), .text(Self.deVriesCase)])
        // Meanwhile the office hands the case to team Bergen.
        try await office.execute("UPDATE cases SET team = 'bergen' WHERE id = ?", [.text(Self.deVriesCase)])
        try await office.sync()

        let bertsPull = try await bert.sync()
        #expect(try ids(bert, "cases").contains(Self.deVriesCase))
        #expect(try ids(bert, "residents").contains(Self.deVries))
        #expect(try ids(bert, "carers") == [Self.els, Self.joepsMother])
        #expect(try bert.knownCellCount() - bertsCellsBefore == bertsPull.pulled.cellsApplied)
        let moved = try server.store.inspection.rowsTakingScopes(from: RowReference(table: "cases", row: Self.deVriesCase))
        #expect(moved.count == 10, "case, resident, visit, note, 2 provisions, carer, care relation, help request, match")
        var movedCells = 0
        for row in moved { movedCells += try server.store.inspection.cellCount(table: row.table, row: row.row) }
        #expect(bertsPull.pulled.cellsReceived == movedCells, "only the moved rows, nothing else again")

        let fatimasSync = try await fatima.sync()
        #expect(fatimasSync.pushed.applied == 3, "the note written while she had the case arrives (its three cells)")
        #expect(try ids(fatima, "cases") == [Self.sanneCase])
        #expect(try ids(fatima, "residents") == [Self.demo("a0000000", 4)])
        for table in ["visits", "notes"] {
            #expect(try await fatima.query("SELECT count(*) FROM \(table) WHERE case_id = ?", [.text(Self.deVriesCase)]).rows[0][0] == .integer(0))
        }
        for table in ["provisions", "carers", "care_relations", "help_requests", "matches"] {
            #expect(try fatima.rowCount(table) == 0, "\(table) hang off the moved case")
        }
        #expect(try await fatima.query("SELECT count(*) FROM _kt_versions WHERE row_id = ?", [.text(Self.deVriesCase)]).rows[0][0] == .integer(0))
        try await bert.sync()
        #expect(try ids(bert, "notes").contains(before), "her note reached the new team")

        // A note written after the move is refused and stays on her laptop.
        try await fatima.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, 'Fatima', 'Te laat.')",
                           [.text(newID()), .text(Self.deVriesCase)])
        let late = try await fatima.sync()
        #expect(late.pushed.rejected == 3 && late.pushed.applied == 0)
        #expect(try fatima.status().rejectedChanges.allSatisfy { $0.code == "out_of_scope" })
        await server.stop()
    }

    @Test func revokedLostAndDisabledDevicesAreRefusedOnTheirNextRequest() async throws {
        let server = try await Self.start()
        let revoked = try server.replica("laptop 1", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let lost = try server.replica("laptop 2", user: "fatima")
        let disabled = try server.replica("laptop 3", user: "bert", role: .consultant, scopes: ["team:bergen"])
        for replica in [revoked, lost, disabled] { try await replica.sync() }

        _ = try server.store.accounts.revokeDevice("laptop 1")
        _ = try server.store.accounts.markDeviceLost("laptop 2", actor: "test")
        _ = try server.store.accounts.disableUser("bert", actor: "test")

        await #expect { try await revoked.sync() } throws: { "\($0)".contains("token_revoked") }
        #expect(FileManager.default.fileExists(atPath: revoked.path), "a revoked device keeps its replica")
        await #expect { try await disabled.sync() } throws: { "\($0)".contains("user_disabled") }
        await #expect { try await lost.sync() } throws: { "\($0)".contains("device_lost") }
        #expect(!FileManager.default.fileExists(atPath: lost.path), "a lost device deletes its replica")
        #expect(!FileManager.default.fileExists(atPath: lost.path + "-wal"))
        await server.stop()
    }

    @Test func partnersSeeTheirProfileAuditorsOnlyReadAndConfidentialNotesStayInTheTeam() async throws {
        let server = try await Self.start()
        let joyce = try server.replica("mantelzorgcentrum", user: "joyce", role: .partner,
                                       scopes: ["team:castricum-noord", "team:bergen"], profile: "mantelzorgcentrum")
        let ruud = try server.replica("audit", user: "ruud", role: .auditor, scopes: ["*"])
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let colleague = try server.replica("laptop sem", user: "sem", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office")
        for replica in [joyce, ruud, fatima, colleague, office] { try await replica.sync() }

        #expect(try ids(joyce, "carers") == [Self.els, Self.joepsMother])
        #expect(try joyce.rowCount("carer_load_assessments") == 1)
        for table in ["cases", "visits", "notes"] { #expect(try joyce.rowCount(table) == 0, "\(table) are not in her profile") }
        #expect(try joyce.value("residents", Self.joep, "last_name") == .text("Visser"))
        #expect(try joyce.value("residents", Self.joep, "birth_date") == .null, "a column outside the profile never arrives")

        try await joyce.execute("INSERT INTO carer_load_assessments (id, carer_id, assessed_on, load) VALUES (?, ?, '2026-11-22', 'heavy')",
                          [.text(newID()), .text(Self.els)])
        try await joyce.execute("UPDATE residents SET birth_date = '1950-01-01' WHERE id = ?", [.text(Self.deVries)])
        let partnerPush = try await joyce.sync()
        #expect(partnerPush.pushed.applied == 3, "the assessment's three cells written")
        #expect(try joyce.status().rejectedChanges.map(\.code) == ["not_permitted"])

        try await ruud.execute("UPDATE cases SET status = 'gesloten' WHERE id = ?", [.text(Self.tarikCase)])
        let auditorPush = try await ruud.sync()
        #expect(auditorPush.pushed.rejected == 1)
        #expect(try ruud.status().rejectedChanges.map(\.code) == ["read_only"])
        #expect(try ruud.rowCount("cases") == 5, "auditors read every scope they hold")

        // A confidential note: her team, yes; the office's `*`, the partner and the auditor, no.
        let secret = newID(), open = newID()
        try await fatima.execute("INSERT INTO notes (id, case_id, confidential, body) VALUES (?, ?, 1, 'Vermoeden van financieel misbruik.')",
                           [.text(secret), .text(Self.deVriesCase)])
        try await fatima.execute("INSERT INTO notes (id, case_id, confidential, body) VALUES (?, ?, 0, 'Boodschappen geregeld.')",
                           [.text(open), .text(Self.deVriesCase)])
        try await fatima.sync()
        for replica in [colleague, office, ruud, joyce] { try await replica.sync() }
        #expect(try ids(colleague, "notes").isSuperset(of: [secret, open]))
        let officeNotes = try ids(office, "notes")
        #expect(officeNotes.contains(open) && !officeNotes.contains(secret))
        #expect(try !ids(ruud, "notes").contains(secret))

        // Made confidential later: it leaves the devices that may no longer see it.
        try await fatima.execute("UPDATE notes SET confidential = 1 WHERE id = ?", [.text(open)])
        try await fatima.sync()
        let evicted = try await office.sync()
        #expect(evicted.pulled.rowsEvicted == 1)
        #expect(try !ids(office, "notes").contains(open))
        try await colleague.sync()
        #expect(try colleague.value("notes", open, "confidential") == .integer(1))
        await server.stop()
    }

    @Test func aUserWhoGainsOrLosesAScopeStartsOverWithoutLosingUnsentWrites() async throws {
        let server = try await Self.start()
        let bert = try server.replica("laptop bert", user: "bert", role: .consultant, scopes: ["team:bergen"])
        try await bert.sync()
        #expect(try ids(bert, "cases") == [Self.joepCase])

        _ = try server.store.accounts.addScope("team:castricum-noord", to: "bert", actor: "test")
        let gained = try await bert.sync()
        #expect(try ids(bert, "cases") == [Self.joepCase, Self.sanneCase, Self.deVriesCase])
        #expect(gained.pulled.rowsEvicted == 0)

        // Written while he still had Bergen, sent after he lost it: accepted, then the rows leave.
        try await bert.execute("UPDATE cases SET contact_person = 'Bert' WHERE id = ?", [.text(Self.joepCase)])
        _ = try server.store.accounts.removeScope("team:bergen", from: "bert", actor: "test")
        let lost = try await bert.sync()
        let refusedMessages = try bert.status().rejectedChanges.map(\.message)
        #expect(lost.pushed.applied == 1, "\(refusedMessages) \(lost)")
        #expect(try server.store.inspection.cell(table: "cases", row: Self.joepCase, column: "contact_person")?.value == .text("Bert"))
        #expect(try ids(bert, "cases") == [Self.sanneCase, Self.deVriesCase])
        #expect(try !ids(bert, "carers").contains(Self.joepsMother))
        #expect(lost.pulled.rowsEvicted > 0)
        await server.stop()
    }
}

/// The access rules as a table: every role against every kind of row.
@Suite struct AccessRulesTests {
    let model: DataModel
    init() throws { model = try shippedDataModel() }

    func access(_ role: Role, _ scopes: Set<String>, profile: String? = nil) -> Access {
        Access(userID: "u", userName: "u", role: role, scopes: scopes, profile: profile)
    }

    @Test func whoSeesWhichRow() throws {
        let cases = try #require(model.table(named: "cases")), notes = try #require(model.table(named: "notes"))
        let teams = try #require(model.table(named: "teams")), carers = try #require(model.table(named: "carers"))
        let mine: Set<String> = ["team:a"], theirs: Set<String> = ["team:b"]
        // (role, user scopes, profile, table, row scopes, confidential) → visible
        let expectations: [(Role, Set<String>, String?, DataModel.Table, Set<String>, Bool, Bool)] = [
            (.consultant, mine, nil, cases, mine, false, true),
            (.consultant, mine, nil, cases, theirs, false, false),
            (.consultant, mine, nil, cases, [], false, false),
            (.consultant, mine, nil, teams, [], false, true),
            (.consultant, mine, nil, notes, mine, true, true),
            (.consultant, mine, nil, notes, theirs, true, false),
            (.backOffice, ["*"], nil, cases, theirs, false, true),
            (.backOffice, ["*"], nil, notes, theirs, true, false),
            (.backOffice, ["*", "team:b"], nil, notes, theirs, true, true),
            (.admin, [], nil, cases, theirs, false, true),
            (.admin, ["*"], nil, notes, theirs, true, false),
            (.auditor, ["*"], nil, cases, theirs, false, true),
            (.auditor, mine, nil, notes, mine, true, false),
            (.partner, mine, "mantelzorgcentrum", carers, mine, false, true),
            (.partner, mine, "mantelzorgcentrum", carers, theirs, false, false),
            (.partner, mine, "mantelzorgcentrum", cases, mine, false, false),
            (.partner, mine, "mantelzorgcentrum", teams, [], false, true),
            (.partner, mine, "schuldhulp", cases, mine, false, true),
            (.partner, mine, "schuldhulp", notes, mine, true, false),
            (.partner, mine, nil, carers, mine, false, false),
            (.partner, ["*"], "mantelzorgcentrum", carers, theirs, false, true),
        ]
        for (role, scopes, profile, table, rowScopes, confidential, visible) in expectations {
            let result = AccessRules.canSee(table: table, rowScopes: rowScopes, confidential: confidential,
                                            access: access(role, scopes, profile: profile), model: model)
            #expect(result == visible, "\(role) \(scopes) \(profile ?? "-") on \(table.name) \(rowScopes) confidential=\(confidential)")
        }
    }

    @Test func whoMayChangeWhat() throws {
        let cases = try #require(model.table(named: "cases")), teams = try #require(model.table(named: "teams"))
        let residents = try #require(model.table(named: "residents"))
        func code(_ role: Role, _ table: DataModel.Table, _ column: String, profile: String? = nil) -> ErrorCode? {
            AccessRules.writeRefusal(table: table, column: column, access: access(role, ["team:a"], profile: profile), model: model)?.code
        }
        #expect(code(.consultant, cases, "status") == nil)
        #expect(code(.consultant, teams, "name") == .notPermitted)
        #expect(code(.backOffice, teams, "name") == nil)
        #expect(code(.admin, teams, "name") == nil)
        #expect(code(.auditor, cases, "status") == .readOnly)
        #expect(code(.partner, cases, "status", profile: "mantelzorgcentrum") == .notPermitted)
        #expect(code(.partner, residents, "last_name", profile: "mantelzorgcentrum") == nil)
        #expect(code(.partner, residents, "bsn", profile: "mantelzorgcentrum") == .notPermitted)
        #expect(code(.partner, residents, Merge.deletedColumn, profile: "mantelzorgcentrum") == nil)

        // Scopes held when the change was written.
        #expect(AccessRules.mayWrite(table: cases, rowScopesWhenWritten: ["team:a"], userScopesWhenWritten: ["team:a"], access: access(.consultant, ["team:a"])))
        #expect(!AccessRules.mayWrite(table: cases, rowScopesWhenWritten: ["team:b"], userScopesWhenWritten: ["team:a"], access: access(.consultant, ["team:a"])))
        #expect(AccessRules.mayWrite(table: teams, rowScopesWhenWritten: [], userScopesWhenWritten: [], access: access(.backOffice, [])))
        #expect(AccessRules.mayWrite(table: cases, rowScopesWhenWritten: ["team:b"], userScopesWhenWritten: [], access: access(.admin, [])))
    }

    /// A link makes the target visible wherever the linking row is: only rows the writer may see (decision 0017).
    @Test func whoMayLinkToWhat() throws {
        let residents = try #require(model.table(named: "residents")), carers = try #require(model.table(named: "carers"))
        let teams = try #require(model.table(named: "teams"))
        func may(_ role: Role, _ scopes: Set<String>, _ table: DataModel.Table, _ rowScopes: Set<String>, profile: String? = nil) -> Bool {
            AccessRules.mayReference(table: table, rowScopesWhenWritten: rowScopes, userScopesWhenWritten: scopes,
                                     access: access(role, scopes, profile: profile), model: model)
        }
        #expect(may(.consultant, ["team:a"], residents, ["team:a", "team:b"]), "a resident her team already sees")
        #expect(!may(.consultant, ["team:a"], residents, ["team:b"]), "another team's resident")
        #expect(!may(.consultant, ["team:a"], residents, []), "a resident nobody's case points to yet")
        #expect(may(.backOffice, ["*"], residents, ["team:b"]), "the back office links across teams")
        #expect(may(.consultant, ["team:a"], teams, []), "reference data")
        #expect(may(.partner, ["team:a"], carers, ["team:a"], profile: "mantelzorgcentrum"))
        #expect(!may(.partner, ["team:a"], carers, ["team:a"], profile: "schuldhulp"), "a table outside the partner's profile")
    }
}
