import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// The data model of Schemas/datamodel.yaml: loading and checking it, every table through sync,
/// hostile values on both sides, evolution with two versions in one run, deadlines.
@Suite struct DataModelTests {
    @Test func theShippedModelLoadsAndIsComplete() throws {
        let model = try shippedDataModel()
        let names = Set(model.tables.map(\.name))
        for table in ["municipalities", "teams", "residents", "households", "household_members", "cases", "visits", "notes",
                      "life_domain_assessments", "plans", "goals", "provisions", "carers", "care_relations", "carer_load_assessments",
                      "carer_support", "appreciations", "volunteers", "help_requests", "matches", "consents", "signals"] {
            #expect(names.contains(table), "missing table \(table)")
        }
        #expect(model.tables.allSatisfy { $0.scope != nil }, "every table says who may see it")
        #expect(model.table(named: "cases")?.column(named: "status")?.policy == .review)
        #expect(model.table(named: "plans")?.column(named: "signed_at")?.policy == .immutable)
        #expect(model.table(named: "residents")?.column(named: "bsn")?.pii == .direct)
        #expect(model.table(named: "notes")?.appendOnly == true)
    }

    func loadProblem(_ yaml: String) -> String {
        do {
            _ = try DataModelFile.parse(Data(yaml.utf8), name: "test.yaml")
            return "(loaded)"
        } catch {
            return "\(error)"
        }
    }

    @Test func mistakesInTheFileAreNamed() {
        let head = "version: 1\ntables:\n"
        #expect(loadProblem(head + "  - {name: cases, columns: [{name: amount, type: money}]}").contains("money"))
        #expect(loadProblem(head + "  - {name: cases, columns: [{name: resident_id, type: reference, references: people}]}")
            .contains("'cases.resident_id' references table 'people', which does not exist"))
        #expect(loadProblem(head + "  - {name: cases, columns: [{name: status, type: enum}]}").contains("cases.status"))
        #expect(loadProblem(head + "  - {name: cases, scope: {parent: team}, columns: [{name: team, type: text}]}")
            .contains("scope 'parent: team' must name a reference column"))
        #expect(loadProblem(head + "  - {name: cases, columns: [{name: score, type: integer, minimum: 5, maximum: 1}]}")
            .contains("minimum 5.0 is greater than maximum 1.0"))
        #expect(loadProblem("version: 1\ntables:\n  - {name: cases, columns: [{type: text}]}").contains("name"))
        #expect(loadProblem("version: [").contains("YAML"))
    }

    /// A valid value for every column type, so that each table can be written generically.
    static func sampleValue(_ column: DataModel.Column, row: Int, ids: [String: String], attachment: CellValue = .null) -> CellValue {
        switch column.type {
        case .text: return .text(String("\(column.name) \(row) — ünïcødé".prefix(column.maxLength ?? 100)))
        case .integer: return .integer(Int64(column.minimum ?? 1) + Int64(row % 2))
        case .real: return .real((column.minimum ?? 0) + 1.5)
        case .boolean: return .integer(Int64(row % 2))
        case .date: return .text("2026-1\(row % 3)-2\(row % 9)")
        case .datetime: return .text("2026-11-23T10:1\(row % 10):00Z")
        case .enum: return .text(column.values![row % column.values!.count])
        case .reference: return .text(ids[column.references!]!)
        case .list: return .text(column.values.map { "[\"\($0[0])\"]" } ?? #"["nl","en"]"#)
        case .attachment: return attachment
        }
    }

    @Test func everyTableRoundTripsThroughSync() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        let model = laptop.dataModel
        // Parents before children: a table is written once every table it references has a row.
        var ids: [String: String] = [:]
        var remaining = model.tables
        // One photo for every attachment column, on the device before the rows that refer to it.
        let photo = try temporaryDirectory("sample") + "/photo.jpg"
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 7, count: 5_000)).write(to: URL(fileURLWithPath: photo))
        let attachment = try laptop.importAttachment(file: photo, table: "documents", column: "file").cellValue
        try laptop.transaction {
            while !remaining.isEmpty {
                let ready = remaining.filter { table in
                    table.columns.allSatisfy { $0.type != .reference || ids[$0.references!] != nil || $0.references == table.name }
                }
                try #require(!ready.isEmpty, "reference cycle among \(remaining.map(\.name))")
                for table in ready {
                    let id = newID()
                    ids[table.name] = id
                    let values = table.columns.map {
                        Self.sampleValue($0, row: 1, ids: ids.merging([table.name: id]) { a, _ in a }, attachment: attachment)
                    }
                    let columns = (["id"] + table.columns.map { "\"\($0.name)\"" }).joined(separator: ", ")
                    let marks = Array(repeating: "?", count: table.columns.count + 1).joined(separator: ", ")
                    try laptop.execute("INSERT INTO \"\(table.name)\" (\(columns)) VALUES (\(marks))", [.text(id)] + values)
                }
                remaining.removeAll { table in ready.contains { $0.name == table.name } }
            }
        }
        // The sample note is confidential: only holders of the case's own team scope see it, not `*`.
        let team = try #require(try laptop.value("cases", ids["cases"]!, "team")?.description)
        _ = try server.store.accounts.addScope("team:\(team)", to: "office", actor: "test")
        let report = try await laptop.sync()
        #expect(report.pushed.rejected == 0)
        #expect(report.pushed.applied == model.tables.reduce(0) { $0 + $1.columns.count })
        try await office.sync()
        #expect(try office.snapshot() == laptop.snapshot())
        for table in model.tables { #expect(try office.rowCount(table.name) == 1, "\(table.name)") }
        await server.stop()
    }

    @Test func hostileValuesAreRefusedOnTheReplicaAndNothingIsStored() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        let (resident, caseID) = try seedCase(on: laptop)
        let before = try laptop.outbox().count
        let cases: [(String, [CellValue], String)] = [
            ("UPDATE cases SET question = ? WHERE id = ?", [.text(String(repeating: "x", count: 1_000_000)), .text(caseID)], "cases.question"),
            ("UPDATE cases SET question = ? WHERE id = ?", [.text("a\u{0}b"), .text(caseID)], "NUL"),
            ("UPDATE cases SET question = CAST(X'C328' AS TEXT) WHERE id = ?", [.text(caseID)], "UTF-8"),
            ("UPDATE cases SET melding_date = '2026-02-30' WHERE id = ?", [.text(caseID)], "cases.melding_date"),
            ("UPDATE cases SET status = 'weg' WHERE id = ?", [.text(caseID)], "cases.status"),
            ("UPDATE cases SET resident_id = '1; DROP TABLE cases' WHERE id = ?", [.text(caseID)], "cases.resident_id"),
            ("UPDATE cases SET safety_risk = 2 WHERE id = ?", [.text(caseID)], "cases.safety_risk"),
            ("UPDATE cases SET domains = '[\"wmo\",\"astrology\"]' WHERE id = ?", [.text(caseID)], "astrology"),
            ("INSERT INTO care_relations (id, carer_id, recipient_id, hours_per_week) VALUES (?, ?, ?, 169)",
             [.text(newID()), .text(newID()), .text(resident)], "at most 168"),
            ("INSERT INTO cases (id, resident_id, team) VALUES ('ABC', ?, 'x')", [.text(resident)], "cases.id"),
            ("INSERT INTO life_domain_assessments (id, case_id, domain, score) VALUES (?, ?, 'finances', 9)",
             [.text(newID()), .text(caseID)], "at most 5"),
        ]
        for (sql, arguments, fragment) in cases {
            do {
                try await laptop.execute(sql, arguments)
                Issue.record("accepted: \(sql)")
            } catch {
                #expect("\(error)".contains(fragment), "\(sql): \(error)")
            }
        }
        #expect(try laptop.outbox().count == before, "nothing of a refused write reaches the outbox")
        #expect(try laptop.value("cases", caseID, "status") == .text("melding"))
        // A child may arrive before its parent (offline-first): a note for a case nobody has yet is fine.
        try await laptop.execute("INSERT INTO notes (id, case_id, body) VALUES (?, ?, 'voor een casus die later komt')", [.text(newID()), .text(newID())])
        let report = try await laptop.sync()
        #expect(report.pushed.rejected == 0)
        await server.stop()
    }

    /// A v2 model: a new table, a new column, a new enum value.
    static func version2(of v1: DataModel, minimumClientVersion: Int = 1) -> DataModel {
        var v2 = v1
        v2.version = v1.version + 1
        v2.minimumClientVersion = minimumClientVersion
        let cases = v2.tables.firstIndex { $0.name == "cases" }!
        v2.tables[cases].columns.append(.init(name: "language", type: .text, maxLength: 40))
        let source = v2.tables[cases].columns.firstIndex { $0.name == "source" }!
        v2.tables[cases].columns[source].values!.append("wijkagent")
        v2.tables.append(.init(name: "complaints", scope: .init(parent: "case_id"), columns: [
            .init(name: "case_id", type: .reference, references: "cases", required: true),
            .init(name: "received_on", type: .date),
            .init(name: "summary", type: .text, maxLength: 2000, pii: .special),
        ]))
        return v2
    }

    @Test func anOldReplicaKeepsSyncingAndUpgradesInPlace() async throws {
        let v1 = try shippedDataModel()
        let v2 = Self.version2(of: v1)
        #expect(v2.evolutionProblems(from: v1).isEmpty)
        let server = try await TestServer.start(dataModel: v2)
        let newLaptop = try server.replica("new laptop")
        let oldPath = try temporaryDirectory("old") + "/old.sqlite"
        let old = try Replica.create(path: oldPath, dataModel: v1, serverURL: server.url, token: try server.token("old laptop"))

        let (_, caseID) = try seedCase(on: newLaptop)
        try await newLaptop.execute("UPDATE cases SET language = 'Pools', source = 'wijkagent' WHERE id = ?", [.text(caseID)])
        let complaint = newID()
        try await newLaptop.execute("INSERT INTO complaints (id, case_id, received_on, summary) VALUES (?, ?, '2026-11-20', 'Te laat gebeld')",
                              [.text(complaint), .text(caseID)])
        try await newLaptop.sync()

        // The old replica syncs what it knows, keeps the rest aside, and is told to upgrade.
        let first = try await old.sync()
        #expect(first.serverSchemaVersion == v2.version)
        #expect(try old.value("cases", caseID, "status") == .text("melding"))
        #expect(try old.value("cases", caseID, "source") == .text("wijkagent"), "a new enum value in a known column arrives")
        #expect(try old.status().serverSchemaVersion == v2.version)
        // It still writes what its model knows, and refuses locally what it does not.
        try await old.execute("UPDATE cases SET contact_person = 'Anne' WHERE id = ?", [.text(caseID)])
        #expect(throws: (any Error).self, "v1 does not know the value 'wijkagent'") {
            try old.execute("INSERT INTO cases (id, resident_id, team, source) VALUES (?, ?, 't', 'wijkagent')", [.text(newID()), .text(newID())])
        }
        let written = try await old.sync()
        #expect(written.pushed.applied == 1)

        // Upgrade in place: no download, the stashed cells fill the new table and column.
        let cursorBefore = try old.cursor
        let upgrade = try old.upgrade(to: v2)
        #expect(upgrade.tablesAdded == ["complaints"])
        #expect(upgrade.columnsAdded == ["cases.language"])
        #expect(upgrade.stashedCellsApplied == 4)
        #expect(try old.cursor == cursorBefore)
        #expect(try old.value("cases", caseID, "language") == .text("Pools"))
        #expect(try old.value("complaints", complaint, "summary") == .text("Te laat gebeld"))
        let after = try await old.sync()
        #expect(after.pulled.cellsApplied == 0, "nothing had to be downloaded again")
        #expect(after.serverSchemaVersion == nil)
        // And the upgraded replica writes the new parts of the model.
        try await old.execute("UPDATE cases SET language = 'Oekraïens' WHERE id = ?", [.text(caseID)])
        try await old.sync()
        try await newLaptop.sync()
        #expect(try newLaptop.value("cases", caseID, "language") == .text("Oekraïens"))
        #expect(try newLaptop.value("cases", caseID, "contact_person") == .text("Anne"))
        await server.stop()
    }

    @Test func aServerThatRequiresANewerModelRefusesOldWritesAndKeepsThem() async throws {
        let v1 = try shippedDataModel()
        let server = try await TestServer.start(dataModel: Self.version2(of: v1, minimumClientVersion: v1.version + 1))
        let old = try Replica.create(path: try temporaryDirectory("old") + "/old.sqlite", dataModel: v1, serverURL: server.url,
                                     token: try server.token("old laptop"))
        _ = try seedCase(on: old)
        let pending = try old.outbox().count
        let refused = try await old.sync()
        #expect(refused.pushed.rejected == pending)
        let outbox = try old.outbox()
        #expect(outbox.allSatisfy { $0.state == "rejected" && $0.code == "upgrade_required" })
        #expect(outbox.first?.message?.contains("kt upgrade") == true)
        #expect(try server.store.inspection.counts()["cells"] == 0)

        let upgrade = try old.upgrade(to: server.store.dataModel)
        #expect(upgrade.changesRequeued == pending)
        let accepted = try await old.sync()
        #expect(accepted.pushed.applied == pending)
        #expect(try old.outbox().isEmpty)
        await server.stop()
    }

    @Test func incompatibleModelsAreRefused() throws {
        let v1 = try shippedDataModel()
        var broken = v1
        broken.version = 2
        broken.tables.removeAll { $0.name == "signals" }
        let cases = broken.tables.firstIndex { $0.name == "cases" }!
        broken.tables[cases].columns.removeAll { $0.name == "question" }
        let problems = broken.evolutionProblems(from: v1)
        #expect(problems.contains("table 'signals' was removed"))
        #expect(problems.contains("column 'cases.question' was removed"))
    }
}

@Suite struct DeadlineTests {
    func facts(status: String = "melding", domains: [String] = ["wmo"], melding: String? = nil, application: String? = nil,
               decision: String? = nil, next: String? = nil) -> Deadlines.CaseFacts {
        .init(status: status, domains: domains, meldingDate: melding, applicationDate: application, decisionDate: decision,
              nextContactDue: next, closedDate: nil)
    }

    @Test func wmoDeadlines() {
        let open = Deadlines.open(for: facts(melding: "2026-10-01", application: "2026-11-10"), today: "2026-11-20")
        #expect(open == [
            .init(kind: .investigation, due: "2026-11-12", daysLeft: -8),
            .init(kind: .decision, due: "2026-11-24", daysLeft: 4),
        ])
    }

    @Test func youthAndParticipationGetEightWeeksToDecide() {
        let open = Deadlines.open(for: facts(status: "aanvraag", domains: ["jeugd"], application: "2026-12-28"), today: "2027-01-01")
        #expect(open == [.init(kind: .decision, due: "2027-02-22", daysLeft: 52)])
        let both = Deadlines.open(for: facts(status: "aanvraag", domains: ["jeugd", "wmo"], application: "2026-12-28"), today: "2027-01-01")
        #expect(both.first?.due == "2027-01-11", "the strictest deadline applies")
    }

    @Test func metDeadlinesAreNotListed() {
        #expect(Deadlines.open(for: facts(status: "plan", melding: "2026-01-01"), today: "2026-11-20").isEmpty)
        #expect(Deadlines.open(for: facts(status: "aanvraag", application: "2026-01-01", decision: "2026-01-10"), today: "2026-11-20").isEmpty)
        #expect(Deadlines.open(for: facts(status: "gesloten", melding: "2026-01-01"), today: "2026-11-20").isEmpty)
    }

    @Test("a recorded investigation date closes the investigation deadline, also while the status still says onderzoek")
    func anInvestigationDateClosesItsDeadline() async throws {
        var open = facts(status: "onderzoek", melding: "2026-10-01")
        #expect(Deadlines.open(for: open, today: "2026-11-20").map(\.kind) == [.investigation])
        open.investigationDate = "2026-11-05"
        #expect(Deadlines.open(for: open, today: "2026-11-20").isEmpty)

        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop")
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.execute("UPDATE cases SET status = 'onderzoek', melding_date = '2026-10-01' WHERE id = ?", [.text(caseID)])
        #expect(try laptop.due(today: "2026-11-20", within: 14).map(\.deadline.kind) == [.investigation])
        try await laptop.execute("UPDATE cases SET investigation_date = '2026-11-05' WHERE id = ?", [.text(caseID)])
        #expect(try laptop.due(today: "2026-11-20", within: 14).isEmpty)
    }

    @Test func calendarArithmeticIsExact() {
        for day in stride(from: -700_000, through: 2_000_000, by: 997) {  // years 53 to 7445
            #expect(CalendarDay.number(CalendarDay.string(day)) == day)
        }
        #expect(CalendarDay.number("1970-01-01") == 0)
        #expect(CalendarDay.string(CalendarDay.number("2024-02-28")! + 1) == "2024-02-29")
        #expect(CalendarDay.number("2026-02-30") == nil)
    }

    @Test func ktDueListsTheDemoCasesOffline() async throws {
        let server = try await TestServer.start()
        _ = try server.store.demo.load()
        let laptop = try server.replica("laptop")
        try await laptop.sync()
        await server.stop()  // from here on the laptop is offline
        let due = try laptop.due(today: "2026-11-20", within: 14)
        // De Vries: melding 2026-10-01, status aanvraag (investigation done), application 2026-10-20 → decision due 2026-11-03.
        #expect(due.contains { $0.resident == "Wilhelmina De Vries" && $0.deadline == .init(kind: .decision, due: "2026-11-03", daysLeft: -17) })
        // Sanne: melding 2026-11-03, status melding → investigation due 2026-12-15, beyond 14 days.
        #expect(!due.contains { $0.resident.contains("Sanne") })
        #expect(try laptop.due(today: "2026-11-20", within: 30).contains { $0.resident == "Sanne Jansen" && $0.deadline.kind == .investigation })
        #expect(try laptop.due(today: "2026-11-20", within: 30, contactPerson: "Anne de Wit").allSatisfy { $0.contactPerson == "Anne de Wit" })
    }
}

@Suite struct TextBindingTests {
    @Test func emptyTextStaysEmptyAndIsNotNull() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        let (_, caseID) = try seedCase(on: laptop)
        try await laptop.execute("UPDATE cases SET contact_person = ? WHERE id = ?", [.text(""), .text(caseID)])
        #expect(try laptop.value("cases", caseID, "contact_person") == .text(""))
        try await laptop.sync()
        #expect(try server.store.inspection.cell(table: "cases", row: caseID, column: "contact_person")?.value == .text(""))
        await server.stop()
    }
}

@Suite struct SyntheticPopulationTests {
    @Test func aSyntheticPopulationIsValidAndDeterministic() async throws {
        let node = NodeID(rawValue: 42)!
        var first: [Change] = [], second: [Change] = []
        let population = SyntheticPopulation(municipalities: 2, teams: 3, cases: 120, seed: 9)
        let cells = try population.generate(node: node, milliseconds: 1_763_000_000_000, batchSize: 500) { first += $0 }
        try population.generate(node: node, milliseconds: 1_763_000_000_000, batchSize: 777) { second += $0 }
        #expect(first == second, "same seed, same rows and ids")
        #expect(cells == first.count)
        #expect(cells > 120 * 30, "several visits, notes and members per case")

        // Every generated cell is valid against the shipped data model and syncs to a replica.
        let server = try await TestServer.start()
        let response = try server.store.push(first, device: "demo")
        #expect(response.results.filter { $0.status == .rejected }.map { $0.message ?? "" } == [])
        let laptop = try server.replica("laptop")
        let report = try await laptop.sync()
        #expect(report.pulled.cellsApplied == cells)
        #expect(try laptop.rowCount("cases") == 120)
        #expect(try laptop.rowCount("carers") > 10)
        await server.stop()
    }
}
