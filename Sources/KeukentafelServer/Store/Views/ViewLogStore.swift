import Crypto
import KeukentafelProtocol

/// The server's copy of the devices' view logs (decision 0030): every entry as received, append-only,
/// with what the check of its hash chain found. An entry that was edited on the device, or that
/// follows a gap, is stored and flagged (and the flag noted in the audit trail), never dropped.
public struct ViewLogStore: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// Checks and stores a device's entries; they are stored through the returned `through`.
    public func receive(_ entries: [ViewLog.Entry], device: String) throws -> ViewReceipt {
        try store.writer.withLock { connection in
            try connection.transaction {
                let headRow = try connection.query("SELECT seq, hash FROM view_heads WHERE device = ?", [.text(device)]).first
                let head = (seq: headRow?[0].int64 ?? 0, hash: headRow?[1].string ?? ViewLog.start)
                let ordered = entries.sorted { $0.seq < $1.seq }
                let (findings, newHead) = try ViewLog.verify(ordered, head: head, digest: { hexString(SHA256.hash(data: $0)) }) { seq in
                    try connection.scalar("SELECT hash FROM views WHERE device = ? AND seq = ? ORDER BY id LIMIT 1",
                                          [.text(device), .integer(seq)])?.string
                }
                let nowMilliseconds = store.clock()
                let now = iso8601(nowMilliseconds)
                var flagged: [ViewReceipt.Flag] = []
                for (entry, finding) in zip(ordered, findings) where finding != .repeated {
                    try connection.run("""
                        INSERT INTO views (device, seq, at, received_at, offline, tbl, row_id, purpose, previous, hash, finding)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, [.text(device), .integer(entry.seq), .text(iso8601(entry.at)), .text(now),
                              .integer(Self.wasOffline(at: entry.at, receivedAt: nowMilliseconds) ? 1 : 0), .text(entry.table), .text(entry.row),
                              .text(entry.purpose), .text(entry.previous), .text(entry.hash), .text(finding.rawValue)])
                    if finding != .ok { flagged.append(ViewReceipt.Flag(seq: entry.seq, finding: finding)) }
                }
                try connection.run("""
                    INSERT INTO view_heads (device, seq, hash) VALUES (?, ?, ?)
                    ON CONFLICT (device) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
                    """, [.text(device), .integer(newHead.seq), .text(newHead.hash)])
                if !flagged.isEmpty {
                    let name = try connection.scalar("SELECT name FROM devices WHERE id = ?", [.text(device)])?.string ?? device
                    let detail = flagged.prefix(20).map { "entry \($0.seq): \($0.finding.rawValue)" }.joined(separator: ", ")
                        + (flagged.count > 20 ? ", and \(flagged.count - 20) more" : "")
                    try store.audit.append(connection, actor: "ktd", action: "views.flagged", subject: name, detail: detail)
                }
                return ViewReceipt(through: ordered.last.map { max($0.seq, head.seq) } ?? head.seq, flagged: flagged)
            }
        }
    }

    /// Who viewed a row: every stored entry, oldest first.
    func views(of row: RowReference, _ connection: any StoreConnection) throws -> [ResidentAudit.View] {
        try connection.query("""
            SELECT coalesce(u.name, '?'), coalesce(d.name, v.device), v.tbl, v.row_id, v.at, v.received_at, v.purpose, v.finding, v.offline
            FROM views v LEFT JOIN devices d ON d.id = v.device LEFT JOIN users u ON u.id = d.user_id
            WHERE v.tbl = ? AND v.row_id = ? ORDER BY v.at, v.id
            """, [.text(row.table), .text(row.row)]).map { r in
            ResidentAudit.View(user: r[0].string ?? "?", device: r[1].string ?? "?", table: r[2].string ?? "", row: r[3].string ?? "",
                               at: r[4].string ?? "", receivedAt: r[5].string ?? "", purpose: r[6].string ?? "",
                               offline: (r[8].int64 ?? 0) != 0, finding: r[7].string ?? "")
        }
    }

    /// A view that reached the server more than two minutes after it was recorded was recorded
    /// offline (a device online sends its views with its next sync, within seconds).
    static func wasOffline(at recorded: Int64, receivedAt received: Int64) -> Bool { received - recorded > 120_000 }
}
