import Foundation

/// The report as JSON for scripts: counts as integers, shares as numbers with one decimal, suppressed
/// counts as null with `suppressed: true`, each value's change against the previous period beside it.
enum ReportJSON {
    struct Document: Encodable {
        var title: String
        var firstYear: Int
        var lastYear: Int
        var municipality: String?
        var team: String?
        var asOf: String
        var smallCountsSuppressed: Bool
        var tables: [Table]
        var overdue: [OverdueCase]
    }

    struct Table: Encodable {
        var id: String
        var title: String
        var rule: String
        var labelHeaders: [String]
        var periods: [ReportPeriod]
        var rows: [Row]
        var notes: [String]
    }

    struct Row: Encodable {
        var labels: [String]
        var unit: ReportRow.Unit
        var isTotal: Bool
        var values: [Number?]
        var changes: [Number?]
        var suppressed: [Bool]?
    }

    /// An integer for a count, a number with one decimal for a share.
    struct Number: Encodable {
        var value: Double
        var unit: ReportRow.Unit
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            if unit == .count { try container.encode(Int(value)) } else { try container.encode((value * 10).rounded() / 10) }
        }
    }

    static func render(_ report: CouncilReport, _ cells: ReportCells) throws -> String {
        let tables = report.tables.map { table in
            Table(id: table.id, title: table.title, rule: table.rule, labelHeaders: table.labelHeaders, periods: table.periods,
                  rows: table.rows.map { row in
                      let suppressed = row.values.map { cells.isSuppressed(row, $0) }
                      return Row(labels: row.labels, unit: row.unit, isTotal: row.isTotal,
                                 values: zip(row.values, suppressed).map { value, hidden in hidden ? nil : value.map { Number(value: $0, unit: row.unit) } },
                                 changes: table.periods.indices.map { i in cells.change(table, row, i).map { Number(value: $0, unit: row.unit) } },
                                 suppressed: suppressed.contains(true) ? suppressed : nil)
                  }, notes: table.notes)
        }
        let document = Document(title: report.title, firstYear: report.firstYear, lastYear: report.lastYear, municipality: report.municipality,
                                team: report.team, asOf: report.asOf, smallCountsSuppressed: cells.suppress, tables: tables, overdue: report.overdue)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
    }
}
