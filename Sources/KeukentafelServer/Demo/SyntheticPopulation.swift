import Foundation
import KeukentafelProtocol

/// A synthetic population of any size with the shapes of docs/domain.md: households of one to four
/// residents, cases with several visits, notes and assessments, carers for about a third of the
/// residents, provisions, plans with goals, signals, and volunteers matched to help requests.
/// Deterministic: the same seed gives the same rows, ids included.
public struct SyntheticPopulation: Sendable {
    /// How many municipalities.
    public var municipalities: Int
    /// How many teams, spread over the municipalities.
    public var teams: Int
    /// How many cases, each with a household and residents.
    public var cases: Int
    /// The seed: the same seed makes the same population.
    public var seed: UInt64

    /// A population of `cases` cases.
    public init(municipalities: Int = 4, teams: Int = 8, cases: Int, seed: UInt64 = 1) {
        self.municipalities = max(1, municipalities)
        self.teams = max(1, teams)
        self.cases = cases
        self.seed = seed
    }

    /// Generates the population and hands it over in batches of about `batchSize` changes, so that
    /// memory stays flat whatever the size. Returns the number of cells.
    @discardableResult
    public func generate(node: NodeID, milliseconds: UInt64, batchSize: Int = 20_000,
                         _ deliver: ([Change]) throws -> Void) throws -> Int {
        var generator = Generator(seed: seed, node: node, milliseconds: milliseconds, batchSize: batchSize)
        let municipalityCodes = (1...municipalities).map { "gemeente-\($0)" }
        let teamCodes = (1...teams).map { "team-\($0)" }
        for (i, code) in municipalityCodes.enumerated() {
            try generator.add("municipalities", generator.id(0xE, i), [("code", .text(code)), ("name", .text("Gemeente \(i + 1)"))], deliver)
        }
        for (i, code) in teamCodes.enumerated() {
            try generator.add("teams", generator.id(0xF, i), [("code", .text(code)), ("name", .text("Sociaal team \(i + 1)")),
                                                             ("municipality", .text(municipalityCodes[i % municipalityCodes.count]))], deliver)
        }
        for c in 0..<cases {
            try generator.addCase(c, team: teamCodes[c % teamCodes.count], municipality: municipalityCodes[(c % teamCodes.count) % municipalityCodes.count], deliver)
        }
        try generator.flush(deliver)
        return generator.cells
    }

    struct Generator {
        var random: SplitMix64
        let node: NodeID
        let milliseconds: UInt64
        let batchSize: Int
        var clock = HybridLogicalClock()
        var batch: [Change] = []
        var cells = 0
        var counter: UInt64 = 0

        init(seed: UInt64, node: NodeID, milliseconds: UInt64, batchSize: Int) {
            self.random = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15)
            self.node = node
            self.milliseconds = milliseconds
            self.batchSize = batchSize
        }

        mutating func next() -> UInt64 { random.next() }

        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

        /// A UUID whose first digit says the kind of row and whose last digits count: readable in tests.
        func id(_ kind: UInt64, _ n: Int) -> String {
            let hex = String(UInt64(n), radix: 16)
            return String(kind, radix: 16) + "5000000-0000-4000-8000-" + String(repeating: "0", count: 12 - hex.count) + hex
        }

        /// A time-ordered id (RowID), as a replica's `kt_new_id()` makes them: one millisecond after the previous.
        mutating func newID() -> String {
            counter += 1
            let a = next(), b = next()
            return RowID.timeOrdered(milliseconds: milliseconds + counter, randomA: UInt16(truncatingIfNeeded: a), randomB: b)
        }

        mutating func date(from year: Int = 2025) -> String {
            let day = CalendarDay.number(year: year, month: 1, day: 1) + below(690)
            return CalendarDay.string(day)
        }

        mutating func add(_ table: String, _ row: String, _ values: [(String, CellValue)], _ deliver: ([Change]) throws -> Void) throws {
            for (column, value) in values {
                let version = CellVersion(hlc: clock.tick(wallMilliseconds: milliseconds), node: node)
                cells += 1
                batch.append(Change(id: "synthetic-\(node)-\(cells)", table: table, row: row, column: column, value: value, version: version, base: nil))
            }
            if batch.count >= batchSize { try flush(deliver) }
        }

        mutating func flush(_ deliver: ([Change]) throws -> Void) throws {
            guard !batch.isEmpty else { return }
            try deliver(batch)
            batch.removeAll(keepingCapacity: true)
        }

        static let firstNames = ["Anna", "Mohamed", "Sanne", "Daan", "Fatima", "Joep", "Milena", "Tarik", "Els", "Kees", "Noor", "Lucas", "Yara", "Bram"]
        static let lastNames = ["de Vries", "Jansen", "Bakker", "Visser", "El Amrani", "Kowalski", "Yilmaz", "Smit", "de Jong", "Mulder", "Bos", "Peters"]
        static let statuses = ["melding", "onderzoek", "plan", "aanvraag", "beschikking", "levering", "evaluatie", "gesloten"]
        static let domains = ["wmo", "jeugd", "participatie", "schulden", "wonen"]
        static let lifeDomains = ["finances", "work_daytime", "housing", "household", "physical_health", "mental_health",
                                  "social_network", "daily_living", "safety", "parenting"]
        static let provisionTypes = ["household_help", "household_help", "support", "support", "day_activities", "respite_care", "transport",
                                     "wheelchair", "stair_lift", "mobility_scooter", "adapted_bicycle", "patient_lift", "outdoor_wheelchair"]
        static let youthProvisionTypes = ["youth_care_light", "youth_care_light", "youth_care_intensive", "youth_care_residential"]
        static let providers = ["Thuiszorg Kennemerland", "Zorgbalans", "Welzijn Heiloo", "Hulpmiddelencentrum Noord", "Jeugdhulp Alkmaar",
                                "Dagbesteding De Brug"]
        /// The demo's cases run from 2019 until its "today" (fixed, so the same seed gives the same rows).
        static let firstDay = CalendarDay.number(year: 2019, month: 1, day: 1)
        static let today = CalendarDay.number(year: 2026, month: 11, day: 1)

        mutating func addProvision(_ caseID: String, law: String, type: String, provider: String, start: Int, end: Int?, decision: Int,
                                   _ deliver: ([Change]) throws -> Void) throws {
            let status = end.map { $0 < Self.today } ?? false ? "ended" : start > Self.today ? "granted" : "delivering"
            var values: [(String, CellValue)] = [
                ("case_id", .text(caseID)), ("law", .text(law)), ("kind", .text("customised")), ("provision_type", .text(type)),
                ("provider", .text(provider)), ("funding", .text(chance(80) ? "in_kind" : "personal_budget")),
                ("start_date", .text(CalendarDay.string(start))), ("status", .text(status)), ("decision_date", .text(CalendarDay.string(decision))),
            ]
            if let end { values.append(("end_date", .text(CalendarDay.string(end)))) }
            try add("provisions", newID(), values, deliver)
        }
        static let consultants = (1...40).map { "Consulent \($0)" }

        mutating func addCase(_ c: Int, team: String, municipality: String, _ deliver: ([Change]) throws -> Void) throws {
            let household = newID()
            try add("households", household, [("name", .text("Huishouden \(c)")), ("municipality", .text(municipality))], deliver)
            var members: [String] = []
            for m in 0..<(1 + below(4)) {
                let resident = newID()
                members.append(resident)
                try add("residents", resident, [
                    ("first_name", .text(pick(Self.firstNames))), ("last_name", .text(pick(Self.lastNames))),
                    ("birth_date", .text(date(from: m == 0 ? 1940 + below(60) : 2005 + below(15)))), ("municipality", .text(municipality)),
                    ("preferred_channel", .text(pick(["digital", "paper", "in_person"]))),
                ], deliver)
                try add("household_members", newID(), [("household_id", .text(household)), ("resident_id", .text(resident)),
                                                        ("relation", .text(m == 0 ? "parent" : "child"))], deliver)
            }
            // A case's life in dates (docs/reports.md counts them): meldingen spread over 2019 until the demo's
            // today, the investigation usually within the 6 weeks, an application for most, a decision
            // usually within its term, and provisions running from the decision for months or years.
            let caseID = newID()
            let domain = pick(Self.domains)
            var domains = [domain]
            if chance(20) { domains.append(pick(Self.domains.filter { $0 != domain })) }
            let meldingDay = Self.firstDay + below(Self.today - Self.firstDay - 14)
            let melding = CalendarDay.string(meldingDay)
            func known(_ day: Int) -> Int? { day <= Self.today ? day : nil }
            let investigation = known(meldingDay + 10 + below(40))
            let application = investigation.flatMap { chance(60) ? known($0 + below(10)) : nil }
            let decision = application.flatMap { known($0 + 3 + below(domains.contains("wmo") ? 14 : 40)) }
            let closed = decision.flatMap { chance(40) ? known($0 + 90 + below(600)) : nil }
            let status = closed != nil ? "gesloten" : decision != nil ? pick(["beschikking", "levering", "evaluatie"])
                : application != nil ? "aanvraag" : investigation != nil ? "plan" : pick(["melding", "onderzoek"])
            var caseValues: [(String, CellValue)] = [
                ("resident_id", .text(members[0])), ("household_id", .text(household)), ("team", .text(team)),
                ("municipality", .text(municipality)), ("domains", .text("[" + domains.map { "\"\($0)\"" }.joined(separator: ",") + "]")),
                ("source", .text(pick(["resident", "gp", "school", "family"]))),
                ("question", .text("Hulpvraag \(c): ondersteuning thuis en bij \(domain).")), ("status", .text(status)),
                ("contact_person", .text(pick(Self.consultants))), ("melding_date", .text(melding)), ("safety_risk", .integer(chance(5) ? 1 : 0)),
                ("request_kind", .text(chance(70) ? "new" : "reassessment")),
            ]
            if let investigation { caseValues.append(("investigation_date", .text(CalendarDay.string(investigation)))) }
            if let application { caseValues.append(("application_date", .text(CalendarDay.string(application)))) }
            if let decision { caseValues.append(("decision_date", .text(CalendarDay.string(decision)))) }
            if let closed { caseValues.append(("closed_date", .text(CalendarDay.string(closed)))) }
            try add("cases", caseID, caseValues, deliver)
            func dayAfterMelding(within days: Int) -> String { CalendarDay.string(min(Self.today, meldingDay + below(days))) }
            for v in 0..<(2 + below(3)) {
                try add("visits", newID(), [("case_id", .text(caseID)), ("happened_at", .text("\(dayAfterMelding(within: 200))T1\(v):00:00Z")),
                                            ("kind", .text(pick(["home_visit", "kitchen_table", "phone"]))), ("summary", .text("Gesprek \(v + 1) over de situatie thuis."))], deliver)
            }
            for n in 0..<(2 + below(4)) {
                try add("notes", newID(), [("case_id", .text(caseID)), ("written_at", .text("\(dayAfterMelding(within: 300))T09:3\(n):00Z")),
                                           ("author", .text(pick(Self.consultants))), ("body", .text("Notitie \(n + 1) bij casus \(c)."))], deliver)
            }
            try add("life_domain_assessments", newID(), [("case_id", .text(caseID)), ("domain", .text(pick(Self.lifeDomains))),
                                                          ("score", .integer(Int64(1 + below(5)))), ("assessed_on", .text(melding))], deliver)
            if chance(35) {
                let plan = newID()
                try add("plans", plan, [("case_id", .text(caseID)), ("plan_type", .text("ondersteuningsplan")), ("status", .text("sent"))], deliver)
                try add("goals", newID(), [("plan_id", .text(plan)), ("domain", .text(pick(Self.lifeDomains))), ("goal", .text("Zelfstandig blijven wonen")),
                                           ("status", .text("open"))], deliver)
            }
            if let decision, chance(70) {
                let law = domain == "jeugd" ? "jeugdwet" : domain == "participatie" ? "participatiewet" : "wmo"
                let type = pick(law == "jeugdwet" ? Self.youthProvisionTypes : law == "participatiewet" ? ["support", "day_activities"] : Self.provisionTypes)
                let provider = below(Self.providers.count)
                let start = decision + below(30)
                let end = chance(40) ? nil : start + 180 + below(720)
                try addProvision(caseID, law: law, type: type, provider: Self.providers[provider], start: start, end: end, decision: decision, deliver)
                if let end, chance(8) {  // moved to another provider when the first one stopped
                    try addProvision(caseID, law: law, type: type, provider: Self.providers[(provider + 1) % Self.providers.count],
                                     start: end + 1, end: nil, decision: end - below(20), deliver)
                }
            }
            if chance(33) {
                let carer = newID()
                try add("carers", carer, [("name", .text("\(pick(Self.firstNames)) \(pick(Self.lastNames))")), ("combines_work", .integer(chance(50) ? 1 : 0)),
                                          ("young_carer", .integer(chance(8) ? 1 : 0))], deliver)
                try add("care_relations", newID(), [("carer_id", .text(carer)), ("recipient_id", .text(members[0])),
                                                    ("relation", .text(pick(["partner", "child", "parent", "neighbour"]))),
                                                    ("hours_per_week", .real(Double(4 + below(40))))], deliver)
                try add("carer_load_assessments", newID(), [("carer_id", .text(carer)), ("assessed_on", .text(date())),
                                                            ("load", .text(pick(["in_balance", "heavy", "overloaded"])))], deliver)
            }
            if chance(5) {
                try add("signals", newID(), [("case_id", .text(caseID)), ("signal_type", .text(pick(["carer_overload", "loneliness", "early_debt"]))),
                                             ("severity", .text(pick(["low", "medium", "high"])))], deliver)
            }
            if c % 50 == 0 {
                let volunteer = newID(), request = newID()
                try add("volunteers", volunteer, [("name", .text("Vrijwilliger \(c / 50)")), ("municipality", .text(municipality)), ("status", .text("matched"))], deliver)
                try add("help_requests", request, [("resident_id", .text(members[0])), ("kind", .text("buddy")), ("status", .text("matched"))], deliver)
                try add("matches", newID(), [("volunteer_id", .text(volunteer)), ("help_request_id", .text(request)), ("status", .text("active"))], deliver)
            }
        }
    }
}

