import Foundation
import KeukentafelProtocol

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    guard !rows.isEmpty else { return print("(none)") }
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

func shorten(_ text: String, to length: Int = 32) -> String {
    let flat = text.replacingOccurrences(of: "\n", with: " ")
    return flat.count <= length ? flat : String(flat.prefix(length - 1)) + "…"
}

func describe(_ c: ConflictRecord) -> String {
    """
    Conflict \(c.id) on \(c.table).\(c.column), row \(c.row)
      winner: \(c.winnerValue)   (version \(c.winnerVersion), device \(c.winnerDevice ?? "?"))
      loser:  \(c.loserValue)   (version \(c.loserVersion), device \(c.loserDevice ?? "?"))
      base:   \(c.base?.description ?? "none")
      rule:   \(c.rule)\(c.review ? "   — flagged for review" : "")
      recorded \(c.recordedAt)\(c.resolvedAt.map { ", resolved \($0) by \(c.resolvedBy ?? "?")" } ?? ", unresolved")
    """
}
