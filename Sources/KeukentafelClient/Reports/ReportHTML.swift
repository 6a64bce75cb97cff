/// One self-contained page: no scripts, no fonts or images from elsewhere. Each table has a bar chart
/// of its headline row (one bar per period, inline SVG), the table with each value's change against
/// the previous period, and its counting rule. Printed, every table starts on a new page.
enum ReportHTML {
    static func render(_ report: CouncilReport, _ cells: ReportCells) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>\(escape(report.title))</title>
            <style>
            body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #1d2733; max-width: 72em; }
            h1 { font-size: 1.6em; margin-bottom: 0.2em; }
            h2 { font-size: 1.2em; margin: 0 0 0.6em; }
            section { margin: 2.5em 0; page-break-inside: avoid; break-inside: avoid; }
            .meta { color: #5a6675; }
            table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
            th, td { border-bottom: 1px solid #d5dbe3; padding: 0.25em 0.7em; }
            th { text-align: left; background: #eef2f7; }
            td.value { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
            td.value .change { color: #5a6675; font-size: 0.85em; margin-left: 0.4em; }
            tr.total td { font-weight: bold; border-top: 2px solid #1d2733; }
            p.rule { color: #3c4856; font-size: 0.88em; max-width: 60em; }
            p.note { color: #8a4b00; font-size: 0.88em; }
            svg .bar { fill: #2f6db5; }
            svg .bar.suppressed { fill: none; }
            svg text { font-family: inherit; font-size: 11px; fill: #1d2733; }
            @media print { body { margin: 0; } section { page-break-before: always; } section:first-of-type { page-break-before: avoid; } }
            </style>
            </head>
            <body>
            <h1>\(escape(report.title))</h1>
            <p class="meta">Deadlines judged on \(escape(report.asOf)).\(cells.suppress ? " Counts of 1 to 4 are shown as &lt;5." : "")
            Counted from the synced records by the rules under each table (docs/reports.md).</p>

            """
        for table in report.tables {
            html += "<section id=\"\(escape(table.id))\">\n<h2>\(escape(table.title))</h2>\n"
            html += chart(table, cells)
            html += "<table>\n<thead><tr>" + table.labelHeaders.map { "<th>\(escape($0))</th>" }.joined()
                + table.periods.map { "<th>\(escape($0.label))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
            for row in table.rows {
                html += row.isTotal ? "<tr class=\"total\">" : "<tr>"
                html += row.labels.map { "<td>\(escape($0))</td>" }.joined()
                for i in table.periods.indices {
                    let change = cells.changeText(table, row, i).map { "<span class=\"change\">\(escape($0))</span>" } ?? ""
                    html += "<td class=\"value\">\(escape(cells.text(row, i)))\(change)</td>"
                }
                html += "</tr>\n"
            }
            html += "</tbody>\n</table>\n<p class=\"rule\">\(escape(table.rule))</p>\n"
            for note in table.notes { html += "<p class=\"note\">\(escape(note))</p>\n" }
            html += "</section>\n"
        }
        html += "<section id=\"overdue\">\n<h2>Overdue requests (\(report.overdue.count))</h2>\n"
        if report.overdue.isEmpty {
            html += "<p>None.</p>\n"
        } else {
            html += "<table>\n<thead><tr>" + ["Team", "Contact person", "Law", "Deadline", "From", "Due", "Done", "Days late", "Case"]
                .map { "<th>\($0)</th>" }.joined() + "</tr></thead>\n<tbody>\n"
            for item in report.overdue {
                html += "<tr>" + [item.team ?? "-", item.contactPerson ?? "-", item.law, item.deadline, item.startedOn, item.due,
                                  item.doneOn ?? "open"].map { "<td>\(escape($0))</td>" }.joined()
                    + "<td class=\"value\">\(item.daysLate)</td><td>\(escape(item.caseID))</td></tr>\n"
            }
            html += "</tbody>\n</table>\n"
        }
        return html + "</section>\n</body>\n</html>\n"
    }

    /// A bar per period for the table's headline row, scaled to its greatest value (100 for a share).
    static func chart(_ table: ReportTable, _ cells: ReportCells) -> String {
        let row = table.rows[table.chartRow]
        // A slot per period, wide enough for its label ("30 Jun 2018" is wider than a bar).
        let barWidth = 44, plotHeight = 140, top = 18, left = 8
        let slot = max(barWidth + 14, Int(Double(table.periods.map(\.label.count).max() ?? 0) * 6.4) + 10)
        let width = left * 2 + table.periods.count * slot
        let shown = row.values.map { value in cells.isSuppressed(row, value) ? nil : value }
        let greatest = row.unit == .percent ? 100 : max(1, shown.compactMap { $0 }.max() ?? 1)
        var svg = "<svg class=\"chart\" role=\"img\" aria-label=\"\(escape(table.title)): \(escape(row.labels.filter { !$0.isEmpty }.joined(separator: " ")))"
            + " per period\" width=\"\(width)\" height=\"\(top + plotHeight + 34)\" viewBox=\"0 0 \(width) \(top + plotHeight + 34)\" "
            + "xmlns=\"http://www.w3.org/2000/svg\">\n"
        for (i, period) in table.periods.enumerated() {
            let x = left + i * slot + (slot - barWidth) / 2
            let height = shown[i].map { Int((($0 / greatest) * Double(plotHeight)).rounded()) } ?? 0
            let y = top + plotHeight - height
            let suppressed = cells.isSuppressed(row, row.values[i])
            svg += "<rect class=\"bar\(suppressed ? " suppressed" : "")\" data-period=\"\(escape(period.label))\" x=\"\(x)\" y=\"\(y)\" "
                + "width=\"\(barWidth)\" height=\"\(height)\"><title>\(escape(period.label)): \(escape(cells.text(row, i)))</title></rect>\n"
            svg += "<text x=\"\(x + barWidth / 2)\" y=\"\(y - 4)\" text-anchor=\"middle\">\(escape(cells.text(row, i)))</text>\n"
            svg += "<text x=\"\(x + barWidth / 2)\" y=\"\(top + plotHeight + 16)\" text-anchor=\"middle\">\(escape(period.label))</text>\n"
        }
        svg += "<line x1=\"\(left - 4)\" y1=\"\(top + plotHeight)\" x2=\"\(width - left + 4)\" y2=\"\(top + plotHeight)\" stroke=\"#1d2733\"/>\n"
        return svg + "</svg>\n"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
