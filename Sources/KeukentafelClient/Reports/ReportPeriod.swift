import KeukentafelProtocol

/// A column of a report: a half-year, a year, or one day on which a stock is counted.
public struct ReportPeriod: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable {
        case halfYear = "half_year"
        case year
        /// A stock, counted on this one day (the last day of a half-year or year).
        case day
    }

    public var kind: Kind
    /// As a council reads it: "H1 2018", "2018", "30 Jun 2018".
    public var label: String
    /// First and last day, both included (`YYYY-MM-DD`).
    public var start: String
    public var end: String

    /// 1 January – 30 June.
    public static func firstHalf(of year: Int) -> ReportPeriod {
        ReportPeriod(kind: .halfYear, label: "H1 \(year)", start: day(year, 1, 1), end: day(year, 6, 30))
    }

    /// 1 July – 31 December.
    public static func secondHalf(of year: Int) -> ReportPeriod {
        ReportPeriod(kind: .halfYear, label: "H2 \(year)", start: day(year, 7, 1), end: day(year, 12, 31))
    }

    public static func year(_ year: Int) -> ReportPeriod {
        ReportPeriod(kind: .year, label: "\(year)", start: day(year, 1, 1), end: day(year, 12, 31))
    }

    /// The stock day that ends a half-year: 30 June or 31 December.
    public static func endOf(_ half: ReportPeriod) -> ReportPeriod {
        let label = (half.end.hasSuffix("-06-30") ? "30 Jun " : "31 Dec ") + half.end.prefix(4)
        return ReportPeriod(kind: .day, label: label, start: half.end, end: half.end)
    }

    /// Whether `date` (`YYYY-MM-DD`) lies in the period.
    func contains(_ date: String) -> Bool { start <= date && date <= end }

    /// Whether something that runs from `from` until `until` (nil: open-ended) runs on a day of the period.
    func overlaps(from: String, until: String?) -> Bool { from <= end && (until.map { $0 >= start } ?? true) }

    static func day(_ year: Int, _ month: Int, _ day: Int) -> String {
        CalendarDay.string(CalendarDay.number(year: year, month: month, day: day))
    }
}
