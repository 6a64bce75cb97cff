import Foundation
import KeukentafelProtocol

/// What pruning the history removed, or would remove.
public struct HistoryPruneReport: Codable, Sendable, Equatable {
    /// Entries received before this moment were pruned (ISO-8601 UTC).
    public var cutoff: String
    /// History entries removed (one per row a push wrote to).
    public var entries: Int
    /// Cell changes in those entries.
    public var changes: Int
    /// Older entries kept because their row has an open conflict.
    public var keptForOpenConflicts: Int
    /// Nothing was removed; the counts say what would be.
    public var dryRun: Bool

    /// "1 history entry (2 changes)".
    public var summary: String {
        "\(entries) history \(entries == 1 ? "entry" : "entries") (\(changes) change\(changes == 1 ? "" : "s"))"
    }
}

/// Pruning the store's history (docs/operations.md, "How the store grows"). The history keeps every
/// accepted change forever; a municipality's retention policy wants it kept for a period and no longer.
/// Current values live in `records` and are never touched; rows with an open conflict keep their whole
/// history, so whoever decides the conflict still sees how it came about. Conflict records, the audit
/// trail and the change marks that make pushes idempotent stay.
///
/// A retry of a change older than the cutoff (a device whose response was lost and that stayed offline
/// that long) is applied again: LWW makes it a duplicate or superseded, so no value changes.
public struct HistoryRetention: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// Entries removed per transaction: the writer is released between them, so pushes go on.
    static let chunk: Int64 = 5_000

    /// The shortest period `prune` accepts: laptops go unsynced through a holiday, and an office needs
    /// a few weeks of "who wrote this" for every record.
    public static let minimumDays = 30

    /// Removes history entries received more than `days` days ago, except those of rows with an open
    /// conflict, and writes the count to the audit trail.
    public func prune(olderThanDays days: Int, actor: String, dryRun: Bool = false) throws -> HistoryPruneReport {
        guard days >= Self.minimumDays else {
            throw AdminError.invalid("history is kept at least \(Self.minimumDays) days; \(days) is too short")
        }
        let cutoffMilliseconds = store.clock() - Int64(days) * 86_400_000
        let cutoff = iso8601(cutoffMilliseconds)
        let old = "h.received_ms < ?"
        let openConflict = "EXISTS (SELECT 1 FROM conflicts c WHERE c.tbl = h.tbl AND c.row_id = h.row_id AND c.resolved_at IS NULL)"
        var report = HistoryPruneReport(cutoff: cutoff, entries: 0, changes: 0, keptForOpenConflicts: 0, dryRun: dryRun)
        let (last, kept) = try store.writer.withLock { connection in
            let last = try connection.scalar("SELECT max(h.id) FROM history h WHERE \(old)", [.integer(cutoffMilliseconds)])?.int64
            let kept = try connection.scalar("SELECT count(*) FROM history h WHERE \(old) AND \(openConflict)", [.integer(cutoffMilliseconds)])?.int64 ?? 0
            return (last, kept)
        }
        report.keptForOpenConflicts = Int(kept)
        guard let last else { return try finish(report, actor: actor) }
        // History is appended in arrival order, so the old entries are (nearly all) the low ids: walk them in
        // ranges, one short transaction each.
        var from = try store.writer.withLock { try $0.scalar("SELECT min(id) FROM history")?.int64 } ?? last
        while from <= last {
            let to = min(from + Self.chunk, last + 1)
            let range = "h.id >= ? AND h.id < ? AND \(old) AND NOT \(openConflict)"
            let arguments: [CellValue] = [.integer(from), .integer(to), .integer(cutoffMilliseconds)]
            try store.writer.withLock { connection in
                try connection.transaction {
                    let counts = try connection.query("SELECT count(*), CAST(coalesce(sum(h.n), 0) AS BIGINT) FROM history h WHERE \(range)", arguments)
                    report.entries += Int(counts.first?[0].int64 ?? 0)
                    report.changes += Int(counts.first?[1].int64 ?? 0)
                    if !dryRun { try connection.run("DELETE FROM history WHERE id IN (SELECT h.id FROM history h WHERE \(range))", arguments) }
                }
            }
            from = to
        }
        return try finish(report, actor: actor)
    }

    private func finish(_ report: HistoryPruneReport, actor: String) throws -> HistoryPruneReport {
        guard !report.dryRun else { return report }
        try store.writer.withLock { connection in
            try connection.transaction {
                try store.audit.append(connection, actor: actor, action: "history.prune", subject: "before \(report.cutoff)",
                                       detail: "\(report.summary) removed, \(report.keptForOpenConflicts) kept for open conflicts")
            }
        }
        return report
    }

    /// A period such as `2y`, `18m`, `26w` or `90d` in days (a year is 365 days, a month 30).
    public static func days(_ period: String) -> Int? {
        let text = period.trimmingCharacters(in: .whitespaces).lowercased()
        guard let unit = text.last, let number = Int(text.dropLast()), number > 0 else { return nil }
        switch unit {
        case "d": return number
        case "w": return number * 7
        case "m": return number * 30
        case "y": return number * 365
        default: return nil
        }
    }
}
