/// One line per table cell (`table,label 1,label 2,period,start,end,value,change`), so a spreadsheet
/// can pivot it; values without thousands separators, suppressed ones as "<5".
enum ReportCSV {
    static func render(_ report: CouncilReport, _ cells: ReportCells) -> String {
        let labelColumns = report.tables.map(\.labelHeaders.count).max() ?? 1
        var out = (["table"] + (1...labelColumns).map { "label \($0)" } + ["period", "start", "end", "unit", "value", "change"])
            .joined(separator: ",") + "\n"
        for table in report.tables {
            for row in table.rows {
                let labels = row.labels + Array(repeating: "", count: labelColumns - row.labels.count)
                for (i, period) in table.periods.enumerated() {
                    let value = row.values[i] == nil ? "" : cells.text(row, i, grouping: false).replacingOccurrences(of: "%", with: "")
                    let change = cells.change(table, row, i).map { row.unit == .count ? String(Int($0)) : String(format: "%.1f", $0) } ?? ""
                    out += ([table.id] + labels + [period.label, period.start, period.end, row.unit.rawValue, value, change])
                        .map(field).joined(separator: ",") + "\n"
                }
            }
        }
        return out
    }

    /// RFC 4180: quoted when it holds a comma, quote or line break.
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
