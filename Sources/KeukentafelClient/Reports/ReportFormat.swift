import Foundation

/// How a report is written out.
public enum ReportFormat: String, CaseIterable, Sendable {
    /// Aligned text for a terminal.
    case table
    /// One line per table cell, for a spreadsheet.
    case csv
    case json
    /// One self-contained page with tables and bar charts (inline SVG), readable when printed.
    case html
}

extension CouncilReport {
    /// The report as text in `format`. With `suppressSmallCounts`, counts of 1 to 4 are shown as "<5"
    /// (null in JSON), so no small group of residents can be recognised in a published table.
    public func rendered(as format: ReportFormat, suppressSmallCounts: Bool = false) throws -> String {
        let cells = ReportCells(suppress: suppressSmallCounts)
        switch format {
        case .table: return ReportText.render(self, cells)
        case .csv: return ReportCSV.render(self, cells)
        case .json: return try ReportJSON.render(self, cells)
        case .html: return ReportHTML.render(self, cells)
        }
    }
}

/// How one value and its change against the previous period read, the same in every format.
struct ReportCells {
    let suppress: Bool

    func isSuppressed(_ row: ReportRow, _ value: Double?) -> Bool {
        suppress && row.unit == .count && (value.map { $0 >= 1 && $0 <= 4 } ?? false)
    }

    /// "1,234", "87.5%", "<5", "–" (a share of nothing).
    func text(_ row: ReportRow, _ index: Int, grouping: Bool = true) -> String {
        let value = row.values[index]
        guard let value else { return "–" }
        if isSuppressed(row, value) { return "<5" }
        switch row.unit {
        case .count: return grouping ? Self.grouped(Int(value)) : String(Int(value))
        case .percent: return String(format: "%.1f%%", value)
        }
    }

    /// The change against the previous period of the same kind (H2 against H1, 2018 against 2017); nil
    /// for the first, or when either value is unknown or suppressed.
    func change(_ table: ReportTable, _ row: ReportRow, _ index: Int) -> Double? {
        guard index > 0, table.periods[index - 1].kind == table.periods[index].kind,
              let now = row.values[index], let before = row.values[index - 1],
              !isSuppressed(row, now), !isSuppressed(row, before) else { return nil }
        return now - before
    }

    func changeText(_ table: ReportTable, _ row: ReportRow, _ index: Int) -> String? {
        guard let change = change(table, row, index) else { return nil }
        switch row.unit {
        case .count: return change == 0 ? "±0" : (change > 0 ? "+" : "−") + Self.grouped(Int(abs(change)))
        case .percent: return change == 0 ? "±0 pt" : (change > 0 ? "+" : "−") + String(format: "%.1f pt", abs(change))
        }
    }

    static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (value < 0 ? "-" : "") + out
    }
}
