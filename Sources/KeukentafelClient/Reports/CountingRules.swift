import KeukentafelProtocol

/// The counting rules of docs/reports.md, as pure functions of the facts: no SQL and no I/O here, so
/// every rule is tested on facts made by hand.
struct CountingRules {
    let facts: ReportFacts
    let firstYear: Int
    let lastYear: Int
    let asOf: String

    /// A report of one year shows its half-years and the year; of several, every half-year.
    var halves: [ReportPeriod] {
        let halves = (firstYear...lastYear).flatMap { [ReportPeriod.firstHalf(of: $0), ReportPeriod.secondHalf(of: $0)] }
        return firstYear == lastYear ? halves + [ReportPeriod.year(firstYear)] : halves
    }

    var years: [ReportPeriod] { (firstYear...lastYear).map(ReportPeriod.year) }

    /// The last day of every half-year.
    var halfYearEnds: [ReportPeriod] {
        (firstYear...lastYear).flatMap { [ReportPeriod.endOf(.firstHalf(of: $0)), ReportPeriod.endOf(.secondHalf(of: $0))] }
    }

    var yearEnds: [ReportPeriod] { (firstYear...lastYear).map { ReportPeriod.endOf(.secondHalf(of: $0)) } }

    // MARK: The laws

    /// The laws a case falls under, by its domains.
    static let laws: [(domain: String, provisionLaw: String, name: String, decisionWeeks: Int)] = [
        ("wmo", "wmo", "Wmo", 2), ("jeugd", "jeugdwet", "Jeugdwet", 8), ("participatie", "participatiewet", "Participatiewet", 8),
    ]

    static func lawName(ofProvisionLaw law: String?) -> String {
        guard let law else { return "(law not recorded)" }
        return laws.first { $0.provisionLaw == law }?.name ?? law
    }

    /// Statuses of a provision that was granted (a refused or merely requested one never ran).
    static let grantedStatuses: Set<String> = ["granted", "delivering", "ended"]

    /// The aids a Wmo desk lends (data model version 3).
    static let aidTypes = ["wheelchair", "outdoor_wheelchair", "mobility_scooter", "adapted_bicycle", "handbike", "special_buggy",
                           "car_adaptation", "stair_lift", "patient_lift", "movable_housing_aid", "mobility_aid"]

    // MARK: Tables

    func wmoRequests() -> ReportTable {
        let periods = halves
        let wmo = facts.cases.filter { $0.domains.contains("wmo") }
        func residents(_ kind: String?) -> [Double?] {
            periods.map { period in
                Double(Set(wmo.filter { $0.melding.map(period.contains) ?? false && (kind == "*" || $0.requestKind == kind) }.map(\.resident)).count)
            }
        }
        let undated = wmo.filter { $0.melding == nil }.count
        return ReportTable(
            id: "wmo_requests", title: "Residents who asked for Wmo support",
            rule: "Distinct residents with a case whose domains include wmo and whose melding date lies in the period, by the kind of "
                + "request. A resident with two requests in one period is one resident; one with a new request and a reassessment in "
                + "the same period is counted in both rows, and once in the total. A year counts each resident once, so it may be "
                + "less than its two half-years together.",
            labelHeaders: ["request"], periods: periods,
            rows: [ReportRow(["new request"], residents("new")), ReportRow(["reassessment"], residents("reassessment")),
                   ReportRow(["kind not recorded"], residents(nil)), ReportRow(["residents who asked"], residents("*"), isTotal: true)],
            notes: undated == 0 ? [] : ["\(undated) Wmo case(s) without a melding date are not counted."], chartRow: 3)
    }

    func homeVisits() -> ReportTable {
        let periods = halves
        func visits(_ kinds: Set<String>) -> [Double?] {
            periods.map { period in Double(facts.visits.filter { kinds.contains($0.kind) && period.contains($0.day) }.count) }
        }
        return ReportTable(
            id: "home_visits", title: "Home visits",
            rule: "Visits of kind home_visit or kitchen_table whose time (in Dutch time) lies in the period. Visits are counted, not "
                + "residents: two visits to one household are two.",
            labelHeaders: ["kind of visit"], periods: periods,
            rows: [ReportRow(["home visit"], visits(["home_visit"])), ReportRow(["kitchen-table conversation"], visits(["kitchen_table"])),
                   ReportRow(["home visits"], visits(["home_visit", "kitchen_table"]), isTotal: true)],
            notes: [], chartRow: 2)
    }

    /// Whether a provision runs on `day`: granted, delivering or ended, started on or before it, and ending on or after it (or open-ended).
    static func runs(_ provision: ReportFacts.Provision, on period: ReportPeriod) -> Bool {
        guard let status = provision.status, grantedStatuses.contains(status), let start = provision.start else { return false }
        return period.overlaps(from: start, until: provision.end)
    }

    var undatedProvisionNote: [String] {
        let undated = facts.provisions.filter { $0.start == nil && $0.status.map(Self.grantedStatuses.contains) ?? false }.count
        return undated == 0 ? [] : ["\(undated) granted provision(s) without a start date are not counted."]
    }

    func provisionsRunning() -> ReportTable {
        let periods = halfYearEnds
        // One pass: per law and type, how many provisions run on each day.
        var counts: [[String]: [Int]] = [:]
        for provision in facts.provisions {
            let running = periods.map { Self.runs(provision, on: $0) ? 1 : 0 }
            guard running.contains(1) else { continue }
            let key = [Self.lawName(ofProvisionLaw: provision.law), provision.type ?? "(type not recorded)"]
            counts[key] = zip(counts[key] ?? Array(repeating: 0, count: periods.count), running).map(+)
        }
        let rows = counts.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { ReportRow($0, counts[$0]!.map(Double.init)) }
        let total = ReportRow(["all provisions", ""], periods.map { day in Double(facts.provisions.filter { Self.runs($0, on: day) }.count) },
                              isTotal: true)
        return ReportTable(
            id: "provisions_running", title: "Provisions running at the end of each half-year",
            rule: "Provisions (not residents) on the last day of the half-year (30 June, 31 December): status granted, delivering or "
                + "ended, start date on or before that day, and end date on or after it or none. A resident with two provisions "
                + "counts twice.",
            labelHeaders: ["law", "provision type"], periods: periods, rows: rows + [total], notes: undatedProvisionNote, chartRow: rows.count)
    }

    func clientsPerProvider() -> ReportTable {
        let periods = halves
        // One pass: per provider, the residents with a provision of theirs running in each period.
        var clients: [String: [Set<String>]] = [:]
        for provision in facts.provisions {
            let running = periods.map { Self.runs(provision, on: $0) }
            guard running.contains(true) else { continue }
            let provider = provision.provider ?? "(provider not recorded)"
            var sets = clients[provider] ?? Array(repeating: [], count: periods.count)
            for (i, runs) in running.enumerated() where runs { sets[i].insert(provision.resident) }
            clients[provider] = sets
        }
        let rows = clients.keys.sorted().map { ReportRow([$0], clients[$0]!.map { Double($0.count) }) }
        let total = ReportRow(["distinct clients"], periods.map { period in
            Double(Set(facts.provisions.filter { Self.runs($0, on: period) }.map(\.resident)).count)
        }, isTotal: true)
        return ReportTable(
            id: "clients_per_provider", title: "Clients per provider",
            rule: "Distinct residents with a provision of the provider running on any day of the period. A resident whose provision "
                + "moved to another provider in the period counts at both providers, and once in the total, so the total may be "
                + "less than the sum of the providers.",
            labelHeaders: ["provider"], periods: periods, rows: rows + [total], notes: undatedProvisionNote, chartRow: rows.count)
    }

    func aidsOnLoan() -> ReportTable {
        let periods = yearEnds
        func onLoan(_ p: ReportFacts.Provision) -> Bool { p.funding != "personal_budget" && p.type.map(Self.aidTypes.contains) ?? false }
        let rows = Self.aidTypes.map { type in
            ReportRow([type], periods.map { day in Double(facts.provisions.filter { $0.type == type && onLoan($0) && Self.runs($0, on: day) }.count) })
        }
        let total = ReportRow(["aids on loan"], periods.map { day in Double(facts.provisions.filter { onLoan($0) && Self.runs($0, on: day) }.count) },
                              isTotal: true)
        return ReportTable(
            id: "aids_on_loan", title: "Aids on loan on 31 December",
            rule: "Provisions of an aid type (wheelchair, scooter, stair lift, …) running on 31 December, funded in kind or with the "
                + "funding not recorded (the desk lends them); aids bought with a personal budget are the resident's own and not "
                + "counted. Aids, not residents.",
            labelHeaders: ["aid"], periods: periods, rows: rows + [total], notes: undatedProvisionNote, chartRow: rows.count)
    }

    func newProvisions() -> ReportTable {
        let periods = halves
        let granted = facts.provisions.filter { $0.status.map(Self.grantedStatuses.contains) ?? false }
        let laws = Set(granted.map { Self.lawName(ofProvisionLaw: $0.law) }).sorted()
        let rows = laws.map { law in
            ReportRow([law], periods.map { period in
                Double(granted.filter { Self.lawName(ofProvisionLaw: $0.law) == law && $0.start.map(period.contains) ?? false }.count)
            })
        }
        let total = ReportRow(["new provisions"], periods.map { period in Double(granted.filter { $0.start.map(period.contains) ?? false }.count) },
                              isTotal: true)
        return ReportTable(
            id: "new_provisions", title: "New provisions",
            rule: "Provisions granted (status granted, delivering or ended) whose start date lies in the period, by law.",
            labelHeaders: ["law"], periods: periods, rows: rows + [total], notes: undatedProvisionNote, chartRow: rows.count)
    }

    func decisions() -> ReportTable {
        let periods = halves
        let decided = facts.cases.filter { $0.decision != nil }
        let rows = Self.laws.map { law in
            ReportRow([law.name], periods.map { period in Double(decided.filter { $0.domains.contains(law.domain) && period.contains($0.decision!) }.count) })
        }
        let total = ReportRow(["decisions"], periods.map { period in Double(decided.filter { period.contains($0.decision!) }.count) }, isTotal: true)
        return ReportTable(
            id: "decisions", title: "Decisions (beschikkingen)",
            rule: "Cases whose decision date lies in the period, by the laws of the case's domains. A case in two domains (wmo and "
                + "jeugd) is counted under both laws and once in the total; a case in none of these domains only in the total.",
            labelHeaders: ["law"], periods: periods, rows: rows + [total], notes: [], chartRow: rows.count)
    }

    /// How a request did against one deadline.
    enum Outcome { case inTime, late, notYetDue, notStarted }

    /// `started` plus `days` is the deadline; done on `done` (nil: not yet).
    func outcome(started: String?, days: Int, done: String?) -> (Outcome, due: String?) {
        guard let started, let start = CalendarDay.number(started) else { return (.notStarted, nil) }
        let due = CalendarDay.string(start + days)
        if let done { return (done <= due ? .inTime : .late, due) }
        return (due < asOf ? .late : .notYetDue, due)
    }

    func deadlines() -> ReportTable {
        let periods = halves
        var rows: [ReportRow] = []
        for law in Self.laws {
            let requests = facts.cases.filter { $0.domains.contains(law.domain) }
            func count(_ period: ReportPeriod, _ body: (ReportFacts.Case) -> Bool) -> Int {
                requests.filter { $0.melding.map(period.contains) ?? false && body($0) }.count
            }
            func row(_ label: String, _ body: @escaping (ReportFacts.Case) -> Bool) -> ReportRow {
                ReportRow([law.name, label], periods.map { Double(count($0, body)) })
            }
            func share(_ label: String, _ inTime: @escaping (ReportFacts.Case) -> Bool, _ late: @escaping (ReportFacts.Case) -> Bool) -> ReportRow {
                ReportRow([law.name, label], periods.map { period in
                    let good = count(period, inTime), bad = count(period, late)
                    return good + bad == 0 ? nil : (Double(good) * 1000 / Double(good + bad)).rounded() / 10
                }, unit: .percent)
            }
            rows.append(row("requests (meldingen)") { _ in true })
            if law.domain == "wmo" {
                let investigation = { (c: ReportFacts.Case) in outcome(started: c.melding, days: 42, done: c.investigation).0 }
                rows.append(row("investigation within 6 weeks") { investigation($0) == .inTime })
                rows.append(row("investigation late") { investigation($0) == .late })
                rows.append(row("investigation not yet due") { investigation($0) == .notYetDue })
                rows.append(share("investigation in time, %", { investigation($0) == .inTime }, { investigation($0) == .late }))
            }
            let decision = { (c: ReportFacts.Case) in outcome(started: c.application, days: law.decisionWeeks * 7, done: c.decision).0 }
            rows.append(row("applications") { $0.application != nil })
            rows.append(row("decision within \(law.decisionWeeks) weeks") { decision($0) == .inTime })
            rows.append(row("decision late") { decision($0) == .late })
            rows.append(row("decision not yet due") { decision($0) == .notYetDue })
            rows.append(share("decision in time, %", { decision($0) == .inTime }, { decision($0) == .late }))
        }
        return ReportTable(
            id: "deadlines", title: "Legal deadlines",
            rule: "Requests are the cases of the law's domain whose melding date lies in the period. Wmo: the investigation is due "
                + "6 weeks (42 days) after the melding (investigation date); the decision 2 weeks after the application (Jeugdwet "
                + "and Participatiewet: 8 weeks). Done on or before the due day is in time; done later, or still open after the due "
                + "day, is late; still open with the due day on or after the report's date is not yet due. The share in time is of "
                + "those in time or late. A case in two domains counts under both laws, each with its own term.",
            labelHeaders: ["law", "measure"], periods: periods, rows: rows, notes: [],
            chartRow: rows.firstIndex { $0.labels == ["Wmo", "decision in time, %"] } ?? 0)
    }

    func wmoClients() -> ReportTable {
        let periods = years
        let wmo = facts.provisions.filter { $0.law == "wmo" }
        return ReportTable(
            id: "wmo_clients", title: "Distinct clients with a running Wmo provision",
            rule: "Distinct residents with a Wmo provision running on any day of the year (granted, delivering or ended; started "
                + "on or before 31 December; ending on or after 1 January or open-ended). Clients, not provisions: a resident with "
                + "household help and a wheelchair is one client.",
            labelHeaders: ["measure"], periods: periods,
            rows: [ReportRow(["Wmo clients"], periods.map { year in Double(Set(wmo.filter { Self.runs($0, on: year) }.map(\.resident)).count) },
                             isTotal: true)],
            notes: undatedProvisionNote, chartRow: 0)
    }

    /// The requests of the report's years that missed a deadline, by team and due day.
    func overdue() -> [OverdueCase] {
        let span = ReportPeriod(kind: .year, label: "", start: ReportPeriod.year(firstYear).start, end: ReportPeriod.year(lastYear).end)
        var result: [OverdueCase] = []
        for law in Self.laws {
            for c in facts.cases where c.domains.contains(law.domain) && (c.melding.map(span.contains) ?? false) {
                func add(_ deadline: String, started: String?, days: Int, done: String?) {
                    let (outcome, due) = self.outcome(started: started, days: days, done: done)
                    guard outcome == .late, let started, let due, let dueDay = CalendarDay.number(due),
                          let doneDay = CalendarDay.number(done ?? asOf) else { return }
                    result.append(OverdueCase(caseID: c.id, team: c.team, contactPerson: c.contactPerson, law: law.name, deadline: deadline,
                                              startedOn: started, due: due, doneOn: done, daysLate: doneDay - dueDay))
                }
                if law.domain == "wmo" { add("investigation", started: c.melding, days: 42, done: c.investigation) }
                add("decision", started: c.application, days: law.decisionWeeks * 7, done: c.decision)
            }
        }
        return result.sorted { ($0.team ?? "", $0.due, $0.caseID, $0.deadline) < ($1.team ?? "", $1.due, $1.caseID, $1.deadline) }
    }

    func report(municipality: String?, team: String?) -> CouncilReport {
        let years = firstYear == lastYear ? "\(firstYear)" : "\(firstYear)–\(lastYear)"
        var scope = ""
        if let municipality { scope += ", municipality \(municipality)" }
        if let team { scope += ", team \(team)" }
        return CouncilReport(
            title: "Sociaal domein report \(years)\(scope)", firstYear: firstYear, lastYear: lastYear, municipality: municipality, team: team,
            asOf: asOf,
            tables: [wmoRequests(), homeVisits(), provisionsRunning(), clientsPerProvider(), aidsOnLoan(), newProvisions(), decisions(),
                     deadlines(), wmoClients()],
            overdue: overdue())
    }
}
