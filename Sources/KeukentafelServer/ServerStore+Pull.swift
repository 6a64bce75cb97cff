import KeukentafelProtocol
import KeukentafelSQLite

extension ServerStore {
    /// The default and the greatest number of cells in one pulled page.
    public static let defaultPageSize = 5_000
    public static let maxPageSize = 50_000

    /// One page of the change feed: the current state of every cell whose sequence number is greater
    /// than `since`, in sequence order, and the conflicts recorded in the same range.
    ///
    /// Read in one snapshot. SQLite has one writer, and sequence numbers are handed out inside its
    /// write transaction, so every number up to the snapshot's greatest is committed: a cursor never
    /// passes a change that commits later.
    public func pull(since cursor: Int64, limit: Int) throws -> PullResponse {
        let limit = max(1, min(limit, Self.maxPageSize))
        let now = clock()
        return try reader.withLock { connection in
            try connection.transaction(immediate: false) {
                let stmt = try connection.statement(
                    "SELECT tbl, row_id, col, value, hlc, node, seq FROM cells WHERE seq > ? ORDER BY seq LIMIT ?")
                try stmt.bind(cursor, at: 1)
                try stmt.bind(Int64(limit), at: 2)
                var rows: [FeedRow] = []
                var count = 0
                var lastSequence = cursor
                while try stmt.step() {
                    count += 1
                    lastSequence = stmt.int64(6)
                    guard let table = stmt.text(0), let row = stmt.text(1), let column = stmt.text(2),
                          let version = CellVersion(hlc: stmt.value(4), node: stmt.value(5)) else { continue }
                    let cell = FeedCell(column: column, value: stmt.value(3), version: version)
                    if let last = rows.last, last.row == row, last.table == table {
                        rows[rows.count - 1].cells.append(cell)
                    } else {
                        rows.append(FeedRow(table: table, row: row, cells: [cell]))
                    }
                }
                let more = count == limit
                let upTo: Int64
                if more {
                    upTo = lastSequence
                } else {
                    let newest = try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")
                    upTo = max(cursor, newest?.int64 ?? cursor)
                }
                let conflicts = try conflictRecords(connection, where: "seq > ? AND seq <= ?", [.integer(cursor), .integer(upTo)])
                return PullResponse(cursor: upTo, more: more, rows: rows, conflicts: conflicts,
                                    serverTime: now, schemaVersion: dataModel.version)
            }
        }
    }

    /// Conflict records, newest first, optionally only unresolved ones.
    public func conflicts(unresolvedOnly: Bool = false, limit: Int = 1000) throws -> [ConflictRecord] {
        try reader.withLock { connection in
            try conflictRecords(connection, where: unresolvedOnly ? "resolved_at IS NULL" : "1",
                                [], order: "id DESC LIMIT \(max(1, limit))")
        }
    }

    public func conflict(id: Int64) throws -> ConflictRecord? {
        try reader.withLock { try conflictRecords($0, where: "id = ?", [.integer(id)]).first }
    }

    func conflictRecords(_ connection: SQLiteConnection, where condition: String, _ arguments: [CellValue],
                         order: String = "seq") throws -> [ConflictRecord] {
        let rows = try connection.query("""
            SELECT id, tbl, row_id, col, winner_value, winner_hlc, winner_node, winner_device,
                   loser_value, loser_hlc, loser_node, loser_device, base_hlc, base_node, rule, review, recorded_at,
                   resolved_at, coalesce((SELECT name FROM devices WHERE id = resolved_by), resolved_by), resolution,
                   (SELECT name FROM devices WHERE id = winner_device), (SELECT name FROM devices WHERE id = loser_device)
            FROM conflicts WHERE \(condition) ORDER BY \(order)
            """, arguments)
        return rows.compactMap { r in
            guard let id = r[0].int64, let table = r[1].string, let row = r[2].string, let column = r[3].string,
                  let winnerVersion = CellVersion(hlc: r[5], node: r[6]), let loserVersion = CellVersion(hlc: r[9], node: r[10])
            else { return nil }
            return ConflictRecord(
                id: id, table: table, row: row, column: column,
                winnerValue: r[4], winnerVersion: winnerVersion, winnerDevice: r[7].string,
                loserValue: r[8], loserVersion: loserVersion, loserDevice: r[11].string,
                base: CellVersion(hlc: r[12], node: r[13]), rule: r[14].string ?? "lww", review: r[15].int64 == 1,
                recordedAt: r[16].string ?? "", resolvedAt: r[17].string, resolvedBy: r[18].string, resolution: r[19].string,
                winnerDeviceName: r[20].string, loserDeviceName: r[21].string)
        }
    }
}
