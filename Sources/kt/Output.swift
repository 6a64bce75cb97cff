import Foundation
import KeukentafelProtocol

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// A cell value as plain JSON (not the tagged form).
struct JSONCell: Encodable {
    let value: CellValue
    init(_ value: CellValue) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    guard !rows.isEmpty else { return print("(no rows)") }
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

func relativeTime(_ milliseconds: Int64) -> String {
    let seconds = (Int64(Date().timeIntervalSince1970 * 1000) - milliseconds) / 1000
    if seconds < 60 { return "\(max(0, seconds)) seconds ago" }
    if seconds < 3600 { return "\(seconds / 60) minutes ago" }
    if seconds < 86400 { return "\(seconds / 3600) hours ago" }
    return "\(seconds / 86400) days ago"
}
