import KeukentafelProtocol
import KeukentafelSQLite

/// A local write waiting in the outbox, as the user sees it in `kt status`.
public struct OutboxEntry: Sendable, Equatable {
    public var change: Change
    /// `pending` (will be pushed) or `rejected` (the server refused it; see `code` and `message`).
    public var state: String
    public var code: String?
    public var message: String?
}

extension Replica {
    /// The change id of outbox entry `seq`: unique forever, because the outbox never reuses a seq.
    func changeID(seq: Int64) -> String {
        // Zero-padded, so one replica's ids sort in write order: the server's index on them grows at the end.
        let digits = String(seq)
        return "\(node)-" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }

    /// The oldest pending local writes, in write order.
    /// `after`: only entries after this one (the batch before it is still on its way to the server).
    func pendingChanges(limit: Int, after: Int64 = 0) throws -> [(seq: Int64, change: Change)] {
        try locked {
            let stmt = try connection.statement("""
                SELECT seq, tbl, row_id, col, value, hlc, base_hlc, base_node FROM _kt_outbox
                WHERE seq > ? AND state = 'pending' ORDER BY seq LIMIT ?
                """)
            try stmt.bind(after, at: 1)
            try stmt.bind(Int64(limit), at: 2)
            var result: [(Int64, Change)] = []
            while try stmt.step() {
                let seq = stmt.int64(0)
                let base = stmt.isNull(6) ? nil : NodeID(rawValue: UInt64(stmt.int64(7))).map { CellVersion(hlc: UInt64(stmt.int64(6)), node: $0) }
                let change = Change(
                    id: changeID(seq: seq), table: stmt.text(1) ?? "", row: stmt.text(2) ?? "", column: stmt.text(3) ?? "",
                    value: stmt.value(4), version: CellVersion(hlc: UInt64(stmt.int64(5)), node: node), base: base)
                result.append((seq, change))
            }
            return result
        }
    }

    /// Records the server's answers: accepted changes leave the outbox, refused ones stay, marked
    /// rejected with the reason, until a person or a later rule deals with them.
    func acknowledge(_ batch: [(seq: Int64, change: Change)], results: [ChangeResult]) throws -> PushCounts {
        var byID: [String: ChangeResult] = [:]
        for result in results { byID[result.id] = result }
        var counts = PushCounts()
        try locked {
            try connection.transaction {
                var erased: [RowReference] = []
                for (seq, change) in batch {
                    guard let result = byID[change.id] else { continue }  // unanswered: stays pending
                    switch result.status {
                    case .applied: counts.applied += 1
                    case .superseded: counts.superseded += 1
                    case .conflict: counts.conflicts += 1
                    case .rejected: counts.rejected += 1
                    }
                    if result.status == .rejected {
                        try connection.run("UPDATE _kt_outbox SET state = 'rejected', code = ?, message = ? WHERE seq = ?",
                                           [.text(result.code?.rawValue ?? "rejected"), .text(result.message ?? ""), .integer(seq)])
                        if result.code == .rowErased { erased.append(RowReference(table: change.table, row: change.row)) }
                    } else {
                        try connection.run("DELETE FROM _kt_outbox WHERE seq = ?", [.integer(seq)])
                    }
                }
                // Written offline about someone who was erased meanwhile: the row goes, with what hangs off
                // it and its unsent changes, as if the erasure's purge had reached it (decision 0017).
                if !erased.isEmpty {
                    counts.purged = try withoutCapture { try remove(Array(Set(erased)), purge: true) }
                }
            }
        }
        if counts.purged > 0 { try locked { try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)") } }
        return counts
    }

    /// How many outbox entries wait, were refused, and were refused for a clock ahead: one query,
    /// cheap enough for a daemon to ask every second.
    public func outboxCounts() throws -> (pending: Int, rejected: Int, clockAhead: Int) {
        try locked {
            let stmt = try connection.statement("""
                SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'rejected'),
                       count(*) FILTER (WHERE state = 'rejected' AND code = 'clock_ahead')
                FROM _kt_outbox
                """)
            defer { stmt.reset() }
            guard try stmt.step() else { return (0, 0, 0) }
            return (Int(stmt.int64(0)), Int(stmt.int64(1)), Int(stmt.int64(2)))
        }
    }

    /// Every outbox entry, oldest first.
    public func outbox() throws -> [OutboxEntry] {
        try locked {
            try connection.query("""
                SELECT seq, tbl, row_id, col, value, hlc, base_hlc, base_node, state, code, message FROM _kt_outbox ORDER BY seq
                """).map { r in
                let base: CellVersion? = {
                    guard case .integer(let h) = r[6], case .integer(let n) = r[7], let id = NodeID(rawValue: UInt64(n)) else { return nil }
                    return CellVersion(hlc: UInt64(h), node: id)
                }()
                guard case .integer(let seq) = r[0], case .integer(let hlc) = r[5] else { throw ReplicaError.notInitialized("damaged outbox") }
                let change = Change(id: changeID(seq: seq), table: r[1].description, row: r[2].description, column: r[3].description,
                                    value: r[4], version: CellVersion(hlc: UInt64(hlc), node: node), base: base)
                return OutboxEntry(change: change, state: r[8].description,
                                   code: r[9] == .null ? nil : r[9].description, message: r[10] == .null ? nil : r[10].description)
            }
        }
    }

    /// Gives changes the server refused as `clock_ahead` a fresh version from the (now correct)
    /// clock and queues them again. Only call this once the device clock agrees with the server's.
    ///
    /// The HLC is reset to the newest version that did not come from the wrong clock, so later local
    /// writes do not carry the future either.
    func restampClockAheadChanges(serverTime: Int64, maxSkew: Int64) throws -> Int {
        try locked {
            try connection.transaction {
                let ahead = try connection.query(
                    "SELECT seq, tbl, row_id, col, hlc FROM _kt_outbox WHERE state = 'rejected' AND code = 'clock_ahead' ORDER BY seq")
                guard !ahead.isEmpty else { return 0 }
                let limit = Int64(HybridLogicalClock.timestamp(milliseconds: UInt64(max(0, serverTime + maxSkew))))
                // Every local version from the future goes, in the clock table and the HLC state alike.
                let sane = try connection.scalar("SELECT max(kt_versions_newest_up_to(versions, ?)) FROM _kt_versions", [.integer(limit)])
                var fresh = HybridLogicalClock(last: UInt64(sane?.int64Value ?? 0))
                for row in ahead {
                    guard case .integer(let seq) = row[0], case .integer(let oldHLC) = row[4] else { continue }
                    let newHLC = Int64(fresh.tick(wallMilliseconds: UInt64(max(0, clock()))))
                    try connection.run("UPDATE _kt_outbox SET hlc = ?, state = 'pending', code = NULL, message = NULL WHERE seq = ?",
                                       [.integer(newHLC), .integer(seq)])
                    guard case .text(let table) = row[1], case .text(let rowID) = row[2], case .text(let column) = row[3] else { continue }
                    var versions = try storedVersions(table: table, row: rowID)
                    if versions[column] == CellVersion(hlc: UInt64(oldHLC), node: node) {
                        versions.set(column, CellVersion(hlc: UInt64(newHLC), node: node))
                        try storeVersions(versions, table: table, row: rowID)
                    }
                }
                try connection.run("UPDATE _kt_meta SET value = ? WHERE key = 'hlc'", [.integer(Int64(fresh.last))])
                resetClock(to: fresh.last)
                return ahead.count
            }
        }
    }
}

/// How a push went, counted per outcome.
public struct PushCounts: Sendable, Equatable, Codable {
    public init() {}
    public var applied = 0
    public var superseded = 0
    public var conflicts = 0
    public var rejected = 0
    /// Local rows removed because the server refused them as belonging to an erased row (`row_erased`).
    public var purged = 0
    public var total: Int { applied + superseded + conflicts + rejected }

    mutating func add(_ other: PushCounts) {
        applied += other.applied
        superseded += other.superseded
        conflicts += other.conflicts
        rejected += other.rejected
        purged += other.purged
    }
}

extension CellValue {
    var int64Value: Int64? {
        if case .integer(let v) = self { return v }
        return nil
    }
}
