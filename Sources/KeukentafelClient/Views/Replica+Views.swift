import Crypto
import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Recording who viewed which record (issue 21, item 2; decision 0030). Care providers must log who
/// *viewed* a client's file, not only who changed it (NEN 7513), and a consultant views most at the
/// kitchen table, offline. The app records a view when the user opens a resident's or a case's
/// record; the entry is kept in the replica's append-only, hash-chained log and sent with the next
/// sync; `ktd admin audit --resident` lists it under "Viewed by".
extension Replica {
    /// Records that the user opened this row, and why. The row must be one this replica holds.
    ///
    /// ```swift
    /// try replica.recordView(table: "cases", row: caseID, purpose: "huisbezoek voorbereiden")
    /// ```
    @discardableResult
    public func recordView(table: String, row: String, purpose: String) throws -> ViewLog.Entry {
        guard let entry = try recordViews(table: table, rows: [row], purpose: purpose).first else {
            throw ReplicaError.notInModel("no row '\(row)' in '\(table)' on this replica")
        }
        return entry
    }

    /// Records views of several rows of one table at once (a list the user looked at). Rows this
    /// replica does not hold are an error, and then nothing is recorded — unless `skippingRowsNotHeld`
    /// (a tool that shows what it was given, such as `kt history` of a row the server still knows).
    @discardableResult
    public func recordViews(table: String, rows: [String], purpose: String, skippingRowsNotHeld: Bool = false) throws -> [ViewLog.Entry] {
        guard dataModel.table(named: table) != nil else {
            throw ReplicaError.notInModel("no table '\(table)' in the data model")
        }
        let purpose = purpose.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !purpose.isEmpty, purpose.count <= 200 else {
            throw ReplicaError.invalidArgument("a view needs a purpose of 1 to 200 characters (why the record was opened)")
        }
        return try locked {
            try connection.transaction {
                let exists = try connection.prepare("SELECT 1 FROM \"\(table)\" WHERE id = ?")
                var (seq, previous) = try lastView(connection)
                var entries: [ViewLog.Entry] = []
                for row in rows {
                    exists.reset()
                    try exists.bind([.text(row)])
                    guard try exists.step() else {
                        if skippingRowsNotHeld { continue }
                        throw ReplicaError.notInModel("no row '\(row)' in '\(table)' on this replica")
                    }
                    seq += 1
                    let entry = ViewLog.Entry(seq: seq, at: clock(), table: table, row: row, purpose: purpose, previous: previous,
                                              digest: Replica.viewDigest)
                    try connection.run("INSERT INTO _kt_views (seq, at, tbl, row_id, purpose, previous, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                       [.integer(entry.seq), .integer(entry.at), .text(table), .text(row), .text(purpose),
                                        .text(entry.previous), .text(entry.hash)])
                    previous = entry.hash
                    entries.append(entry)
                }
                return entries
            }
        }
    }

    /// The views recorded here and not yet stored by the server, oldest first.
    public func unsentViews(limit: Int = 5_000) throws -> [ViewLog.Entry] {
        try locked {
            try connection.query("SELECT seq, at, tbl, row_id, purpose, previous, hash FROM _kt_views WHERE sent = 0 ORDER BY seq LIMIT ?",
                                 [.integer(Int64(limit))]).map { row in
                // As stored: an edited entry must reach the server as it is.
                ViewLog.Entry(seq: row[0].int64 ?? 0, at: row[1].int64 ?? 0, table: row[2].string ?? "", row: row[3].string ?? "",
                              purpose: row[4].string ?? "", previous: row[5].string ?? "", hash: row[6].string ?? "")
            }
        }
    }

    /// The server stored every entry up to `seq`: mark them sent and drop all but the last.
    func markViewsSent(through seq: Int64) throws {
        try locked {
            try connection.transaction {
                try connection.run("UPDATE _kt_views SET sent = 1 WHERE seq <= ? AND sent = 0", [.integer(seq)])
                try connection.run("DELETE FROM _kt_views WHERE sent = 1 AND seq < (SELECT max(seq) FROM _kt_views WHERE sent = 1)")
            }
        }
    }

    /// SHA-256 as hex: the view log's hash (`ViewLog`).
    static func viewDigest(_ bytes: [UInt8]) -> String { hexString(SHA256.hash(data: bytes)) }

    private func lastView(_ connection: SQLiteConnection) throws -> (seq: Int64, hash: String) {
        let last = try connection.query("SELECT seq, hash FROM _kt_views ORDER BY seq DESC LIMIT 1").first
        return (last?[0].int64 ?? 0, last?[1].string ?? ViewLog.start)
    }
}
