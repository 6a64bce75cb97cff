/// The council's half-year and year report (docs/reports.md): tables of counts per period, computed
/// from the records on one replica by the counting rules, never typed in.
public struct CouncilReport: Codable, Sendable {
    public var title: String
    public var firstYear: Int
    public var lastYear: Int
    /// The filters it was made with (nil: every municipality or team this replica holds).
    public var municipality: String?
    public var team: String?
    /// The day deadlines are judged on: a deadline after it is "not yet due".
    public var asOf: String
    public var tables: [ReportTable]
    /// The requests of the report's years whose investigation or decision came late (or is late and still open).
    public var overdue: [OverdueCase]
}

/// One table: rows of labels with a value per period.
public struct ReportTable: Codable, Sendable {
    /// Stable, for scripts: `wmo_requests`, `home_visits`, ….
    public var id: String
    public var title: String
    /// The counting rule in a sentence or three: what is counted, on which date, and why a total may
    /// differ from the sum of its rows.
    public var rule: String
    /// What each label column holds ("law", "provision type").
    public var labelHeaders: [String]
    public var periods: [ReportPeriod]
    public var rows: [ReportRow]
    /// Facts the rule could not place (a provision without a start date): said, not silently left out.
    public var notes: [String]
    /// The row the chart shows, one bar per period.
    public var chartRow: Int

    /// The value of the row whose labels are `labels` in the period labelled `period` (tests and scripts).
    public func value(_ labels: [String], _ period: String) -> Double? {
        guard let row = rows.first(where: { $0.labels == labels }), let column = periods.firstIndex(where: { $0.label == period }) else { return nil }
        return row.values[column]
    }
}

public struct ReportRow: Codable, Sendable {
    public enum Unit: String, Codable, Sendable { case count, percent }
    public var labels: [String]
    public var unit: Unit
    /// One per period; nil for a percentage of nothing.
    public var values: [Double?]
    /// A computed total (shown apart; its rule may make it differ from the sum of the rows).
    public var isTotal: Bool

    init(_ labels: [String], _ values: [Double?], unit: Unit = .count, isTotal: Bool = false) {
        self.labels = labels
        self.unit = unit
        self.values = values
        self.isTotal = isTotal
    }
}

/// A request whose legal deadline was missed, for the team to follow up.
public struct OverdueCase: Codable, Sendable, Equatable {
    public var caseID: String
    public var team: String?
    public var contactPerson: String?
    public var law: String
    /// `investigation` or `decision`.
    public var deadline: String
    public var startedOn: String
    public var due: String
    /// When it was done; nil: still open.
    public var doneOn: String?
    public var daysLate: Int
}
