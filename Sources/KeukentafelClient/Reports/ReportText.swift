/// Aligned text: each table with its rule, values with their change against the previous period.
enum ReportText {
    static func render(_ report: CouncilReport, _ cells: ReportCells) -> String {
        var out = report.title + "\n" + String(repeating: "=", count: report.title.count) + "\n"
        out += "Deadlines judged on \(report.asOf).\(cells.suppress ? " Counts of 1 to 4 are shown as <5." : "")\n"
        for table in report.tables {
            out += "\n" + table.title + "\n" + String(repeating: "-", count: table.title.count) + "\n"
            var lines: [[String]] = [table.labelHeaders + table.periods.map(\.label)]
            for row in table.rows {
                let values = table.periods.indices.map { i in
                    cells.text(row, i) + (cells.changeText(table, row, i).map { " (\($0))" } ?? "")
                }
                lines.append(row.labels.map { row.isTotal && !$0.isEmpty ? $0.uppercased() : $0 } + values)
            }
            out += align(lines, labelColumns: table.labelHeaders.count)
            out += wrap("Rule: " + table.rule, width: 100)
            for note in table.notes { out += "Note: " + note + "\n" }
        }
        out += "\nOverdue requests (\(report.overdue.count))\n"
        if report.overdue.isEmpty {
            out += "None.\n"
        } else {
            var lines = [["TEAM", "CONTACT", "LAW", "DEADLINE", "FROM", "DUE", "DONE", "DAYS LATE", "CASE"]]
            for item in report.overdue {
                lines.append([item.team ?? "-", item.contactPerson ?? "-", item.law, item.deadline, item.startedOn, item.due,
                              item.doneOn ?? "open", String(item.daysLate), item.caseID])
            }
            out += align(lines, labelColumns: 9)
        }
        return out
    }

    /// Columns padded to their widest cell; label columns to the left, values to the right.
    static func align(_ lines: [[String]], labelColumns: Int) -> String {
        let widths = lines[0].indices.map { column in lines.map { $0[column].count }.max() ?? 0 }
        return lines.map { line in
            line.enumerated().map { column, text in
                let pad = String(repeating: " ", count: widths[column] - text.count)
                return column < labelColumns ? text + pad : pad + text
            }.joined(separator: "  ").replacing(/\s+$/, with: "")
        }.joined(separator: "\n") + "\n"
    }

    static func wrap(_ text: String, width: Int) -> String {
        var out = "", line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty, line.count + 1 + word.count > width { out += line + "\n"; line = "" }
            line += (line.isEmpty ? "" : " ") + word
        }
        return out + line + "\n"
    }
}
