import Foundation
import KeukentafelProtocol

/// Output helpers shared by `kt` and `ktd`: JSON for scripts, aligned tables and short values for people.
public enum Terminal {
    public static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    public static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// Whether standard output is a terminal that wants colour (not when piped, not with NO_COLOR).
    public static let colours: Bool = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        && ProcessInfo.processInfo.environment["TERM"] != "dumb"

    public enum Colour: String { case red = "31", green = "32", yellow = "33", dim = "2", bold = "1" }

    /// `text` in a colour on a terminal, plain otherwise.
    public static func paint(_ text: String, _ colour: Colour) -> String {
        colours && !text.isEmpty ? "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m" : text
    }

    /// Prints rows as aligned columns under a header. Cells may be painted: widths ignore the colour codes.
    public static func printTable(_ header: [String], _ rows: [[String]], empty: String = "(none)") {
        guard !rows.isEmpty else { return print(empty) }
        func visible(_ text: String) -> Int {
            var count = 0, inEscape = false
            for scalar in text.unicodeScalars {
                if scalar == "\u{1B}" { inEscape = true } else if inEscape { if scalar == "m" { inEscape = false } } else { count += 1 }
            }
            return count
        }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], visible(cell)) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in i == cells.count - 1 ? cell : cell + String(repeating: " ", count: max(0, widths[i] - visible(cell))) }
                .joined(separator: "  ")
        }
        print(paint(line(header), .bold))
        for row in rows { print(line(row)) }
    }

    /// One line, at most `length` characters; the full value is one `show` or `--json` away.
    /// `text` as one shell word: unchanged when safe, else in single quotes.
    public static func shellQuoted(_ text: String) -> String {
        let safe = !text.isEmpty && text.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.:/@".unicodeScalars.contains($0) }
        return safe ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    public static func shorten(_ text: String, to length: Int = 32) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count <= length ? flat : String(flat.prefix(length - 1)) + "…"
    }

    public static func relativeTime(_ milliseconds: Int64, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> String {
        let seconds = (now - milliseconds) / 1000
        if seconds < 60 { return "\(max(0, seconds)) seconds ago" }
        if seconds < 3600 { return "\(seconds / 60) minutes ago" }
        if seconds < 86400 { return "\(seconds / 3600) hours ago" }
        return "\(seconds / 86400) days ago"
    }

    /// "3 minutes ago" for an ISO-8601 UTC time as the server writes it (`2026-11-23T10:15:00.000Z`).
    public static func age(ofISO text: String, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> String {
        let parts = text.split(whereSeparator: { "-T:.Z".contains($0) }).compactMap { Int($0) }
        guard parts.count >= 6 else { return text }
        let days = CalendarDay.number(year: parts[0], month: parts[1], day: parts[2])
        let milliseconds = Int64(((days * 24 + parts[3]) * 60 + parts[4]) * 60 + parts[5]) * 1000
        return relativeTime(milliseconds, now: now)
    }

    /// The history of a record as a table, oldest first.
    public static func printHistory(_ entries: [HistoryEntry], full: Bool) {
        printTable(["WHEN", "COLUMN", "VALUE", "DEVICE", "OUTCOME", "VERSION"], entries.map {
            [$0.receivedAt, $0.column, shorten($0.value.description, to: full ? Int.max : 40), $0.deviceName ?? $0.device ?? "?",
             $0.status + ($0.won == false ? " (lost)" : ""), $0.version.description]
        }, empty: "No history for this record.")
    }

    static func deviceLabel(_ name: String?, _ id: String?) -> String {
        switch (name, id) {
        case let (name?, id?): return "\(name) [\(id.prefix(8))]"
        case let (nil, id?): return id
        case let (name?, nil): return name
        default: return "?"
        }
    }

    /// A conflict record in full, for `kt conflicts show` and `ktd admin conflicts show`.
    public static func describe(_ c: ConflictRecord) -> String {
        """
        Conflict \(c.id) on \(c.table).\(c.column), row \(c.row)
          winner: \(c.winnerValue)   (device \(deviceLabel(c.winnerDeviceName, c.winnerDevice)), version \(c.winnerVersion))
          loser:  \(c.loserValue)   (device \(deviceLabel(c.loserDeviceName, c.loserDevice)), version \(c.loserVersion))
          base:   \(c.base?.description ?? "none")
          rule:   \(c.rule)\(c.review ? "   — flagged for review" : "")
          recorded \(c.recordedAt) (\(age(ofISO: c.recordedAt)))\(c.resolvedAt.map { ", resolved \($0) by \(c.resolvedBy ?? "?"): \(c.resolution ?? "")" } ?? (c.resolution.map { ", resolved on this device (not yet synced): \($0)" } ?? ", unresolved"))
        """
    }
}

/// A cell value as plain JSON (null, number or string).
public struct JSONCell: Encodable {
    let value: CellValue
    public init(_ value: CellValue) { self.value = value }
    public func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// What to print about a long-running pull, page by page: on a terminal an updating line (starting
/// with a carriage return); otherwise, for logs, one line each time another `every` cells arrived.
/// Short pulls (one page under 10,000 cells) print nothing.
public struct ProgressLines: Sendable {
    public let terminal: Bool
    public let every: Int
    private var printedSteps = 0

    public init(terminal: Bool, every: Int = 100_000) {
        self.terminal = terminal
        self.every = max(1, every)
    }

    /// `expected`: the server's estimate of the cells this pull brings (`SyncStatus.cellsExpected`);
    /// with it and `elapsedSeconds` the line says how far along the pull is and how long it may take.
    public mutating func line(cells: Int, pages: Int, cursor: Int64, expected: Int? = nil, elapsedSeconds: Double? = nil) -> String? {
        guard pages > 1 || cells >= 10_000 else { return nil }
        let estimate = Self.estimate(cells: cells, expected: expected, elapsedSeconds: elapsedSeconds)
        if terminal { return "\rpulling: \(cells)\(estimate) cells in \(pages) pages, cursor \(cursor)   " }
        guard cells / every > printedSteps else { return nil }
        printedSteps = cells / every
        return "pulling: \(cells)\(estimate) cells in \(pages) pages\n"
    }

    /// " of about 120000 (33%, about 12 s left)", or nothing without an estimate.
    static func estimate(cells: Int, expected: Int?, elapsedSeconds: Double?) -> String {
        guard let expected, expected > cells, cells > 0 else { return "" }
        let percent = cells * 100 / expected
        var text = " of about \(expected) (\(percent)%"
        if let elapsedSeconds, elapsedSeconds > 0 {
            let left = elapsedSeconds * Double(expected - cells) / Double(cells)
            text += left < 90 ? ", about \(max(1, Int(left.rounded()))) s left" : ", about \(Int((left / 60).rounded())) min left"
        }
        return text + ")"
    }
}
