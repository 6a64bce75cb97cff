import KeukentafelProtocol

/// What a council report covers.
public struct ReportRequest: Sendable {
    public var firstYear: Int
    public var lastYear: Int
    /// Only the cases of this municipality (its code) or team; nil: every one this replica holds.
    public var municipality: String?
    public var team: String?
    /// The day deadlines are judged on (`YYYY-MM-DD`), usually today.
    public var asOf: String

    public init(firstYear: Int, lastYear: Int? = nil, municipality: String? = nil, team: String? = nil, asOf: String) {
        self.firstYear = firstYear
        self.lastYear = lastYear ?? firstYear
        self.municipality = municipality
        self.team = team
        self.asOf = asOf
    }
}

/// Why a report cannot be made; `code` is stable for scripts.
public struct ReportError: Error, CustomStringConvertible, Sendable {
    public var code: String
    public var message: String
    public var description: String { "\(message) [\(code)]" }
}

extension Replica {
    /// The council's report over the records this replica holds (docs/reports.md), offline: on a
    /// consultant's laptop it counts that team's rows, on the office's full replica the municipality's.
    public func councilReport(_ request: ReportRequest) throws -> CouncilReport {
        guard (1900...2200).contains(request.firstYear), (1900...2200).contains(request.lastYear) else {
            throw ReportError(code: "invalid_period", message: "a report's years lie between 1900 and 2200 (got \(request.firstYear)–\(request.lastYear))")
        }
        guard request.firstYear <= request.lastYear else {
            throw ReportError(code: "invalid_period", message: "the first year (\(request.firstYear)) comes after the last (\(request.lastYear))")
        }
        guard request.lastYear - request.firstYear < 20 else {
            throw ReportError(code: "invalid_period", message: "a report covers at most 20 years side by side")
        }
        guard CalendarDay.number(request.asOf) != nil else {
            throw ReportError(code: "invalid_date", message: "the report's date '\(request.asOf)' is not a date YYYY-MM-DD")
        }
        for (table, column) in ReportFacts.requiredColumns where dataModel.table(named: table)?.column(named: column) == nil {
            throw ReportError(code: "upgrade_required", message: "this replica's data model (version \(dataModel.version)) has no \(table).\(column); "
                + "reports need version 3 or later: run `kt upgrade` (after the server has the new model)")
        }
        try checkKnown("municipality", request.municipality, sql: "SELECT code FROM municipalities UNION SELECT municipality FROM cases")
        try checkKnown("team", request.team, sql: "SELECT code FROM teams UNION SELECT team FROM cases")
        let facts = try ReportFacts.read(from: self, municipality: request.municipality, team: request.team)
        return CountingRules(facts: facts, firstYear: request.firstYear, lastYear: request.lastYear, asOf: request.asOf)
            .report(municipality: request.municipality, team: request.team)
    }

    /// A municipality or team this replica has never heard of is a typo, not an empty report.
    private func checkKnown(_ what: String, _ code: String?, sql: String) throws {
        guard let code else { return }
        let known = try query(sql).rows.compactMap { $0[0].string }.sorted()
        guard !known.contains(code) else { return }
        let list = known.isEmpty ? "none" : known.prefix(12).joined(separator: ", ") + (known.count > 12 ? ", …" : "")
        throw ReportError(code: "unknown_\(what)", message: "no \(what) '\(code)' on this replica (known: \(list))")
    }
}
