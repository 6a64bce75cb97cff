import KeukentafelProtocol
import KeukentafelSQLite

/// One administrative action in the audit trail.
public struct AuditEntry: Codable, Sendable, Equatable {
    /// The entry's number, in the order written.
    public var id: Int64
    /// When, ISO-8601 UTC.
    public var at: String
    /// Who did it (a person at `ktd admin`, or `ktd`).
    public var actor: String
    /// What was done: `user.add`, `device.release`, `erase.resident`, …
    public var action: String
    /// Whom or what it concerned.
    public var subject: String?
    /// Particulars (a scope, a device id, counts).
    public var detail: String?
}

/// "Who changed, who received and who viewed this resident's data": the answer for one resident.
public struct ResidentAudit: Codable, Sendable {
    /// Every row of the resident's data (see `rowsOfResident`).
    public var rows: [RowReference]
    /// Accepted changes, grouped per user, device and table.
    public var changes: [ChangeSummary]
    /// Which devices received which of these rows, grouped per user, device and table.
    public var receipts: [ReceiptSummary]
    /// The devices that hold some of these rows now: received and not confirmed deleted (decision 0028).
    public var holders: [Holder] = []
    /// Every recorded view of these rows, oldest first (decision 0030).
    public var views: [View] = []

    /// A user opened one of the rows on a device.
    public struct View: Codable, Sendable, Equatable {
        public var user: String
        public var device: String
        public var table: String
        public var row: String
        /// When, by the device's clock (ISO-8601).
        public var at: String
        /// When the server received it.
        public var receivedAt: String
        /// Why, as the app or the user said.
        public var purpose: String
        /// Recorded while the device was offline: it reached the server more than two minutes later.
        public var offline: Bool
        /// What the check of the device's log found: `ok`, `gap` (entries before it are missing) or
        /// `altered` (edited after it was recorded, or the entry before it was).
        public var finding: String
    }

    /// A device that holds some of the resident's rows.
    public struct Holder: Codable, Sendable, Equatable {
        public var user: String
        public var device: String
        /// How many of the resident's rows it holds.
        public var rows: Int
        /// Since when: its first receipt of one of them (ISO-8601).
        public var since: String
        /// Of those, rows it was told to delete and has not yet confirmed (it has not synced since).
        public var toDelete: Int
    }

    /// The changes one user made through one device to one table.
    public struct ChangeSummary: Codable, Sendable, Equatable {
        /// The user of the device.
        public var user: String
        /// The device's name.
        public var device: String
        /// The table.
        public var table: String
        /// How many of the resident's rows.
        public var rows: Int
        /// How many cell changes.
        public var cells: Int
        /// The first time, ISO-8601.
        public var first: String
        /// The last time, ISO-8601.
        public var last: String
    }

    /// The rows of one table one device received.
    public struct ReceiptSummary: Codable, Sendable, Equatable {
        /// The user of the device.
        public var user: String
        /// The device's name.
        public var device: String
        /// The table.
        public var table: String
        /// How many of the resident's rows.
        public var rows: Int
        /// The first time, ISO-8601.
        public var first: String
        /// The last time, ISO-8601.
        public var last: String
    }
}

/// The audit trail: administrative actions (append-only), and for a resident who changed and who
/// received their data. Every part of the store appends to it inside its own transaction.
public struct AuditTrail: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// Appends an administrative action (a backup, a restore) to the audit trail.
    public func record(actor: String, action: String, subject: String? = nil, detail: String? = nil) throws {
        try store.writer.withLock { connection in try append(connection, actor: actor, action: action, subject: subject, detail: detail) }
    }

    /// Appends an administrative action to the audit trail, inside the caller's transaction.
    func append(_ connection: any StoreConnection, actor: String, action: String, subject: String?, detail: String?) throws {
        try connection.run("INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                           [.text(iso8601(store.clock())), .text(actor), .text(action), subject.map(CellValue.text) ?? .null,
                            detail.map(CellValue.text) ?? .null])
    }

    /// The administrative actions, newest first, optionally only those about `subject`.
    public func entries(subject: String? = nil, limit: Int = 100) throws -> [AuditEntry] {
        try store.reader.withConnection { connection in
            try connection.query(
                "SELECT id, at, actor, action, subject, detail FROM audit WHERE CAST(?1 AS TEXT) IS NULL OR subject = ?1 ORDER BY id DESC LIMIT ?2",
                [subject.map(CellValue.text) ?? .null, .integer(Int64(max(1, limit)))]
            ).map {
                AuditEntry(id: $0[0].int64 ?? 0, at: $0[1].string ?? "", actor: $0[2].string ?? "", action: $0[3].string ?? "",
                           subject: $0[4].string, detail: $0[5].string)
            }
        }
    }

    /// Who changed the resident's data (every accepted change, by user and device) and who received
    /// it (every device a pull delivered one of the rows to).
    public func resident(_ id: String) throws -> ResidentAudit {
        try store.reader.withConnection { connection in
            try connection.transaction(immediate: false) {
                let rows = try store.erasure.rowsOfResident(id, connection)
                struct Key: Hashable { var user: String, device: String, table: String }
                struct Tally { var rows = Set<String>(), cells = 0, first = "", last = "" }
                func count(_ tally: inout Tally, row: String, cells: Int, first: String, last: String) {
                    tally.rows.insert(row)
                    tally.cells += cells
                    if tally.first.isEmpty || first < tally.first { tally.first = first }
                    if last > tally.last { tally.last = last }
                }
                let who = """
                    coalesce(u.name, CASE WHEN x.device IN ('demo', 'office') THEN 'office (ktd admin)' ELSE '?' END),
                    coalesce(d.name, x.device)
                    """
                var changes: [Key: Tally] = [:], receipts: [Key: Tally] = [:]
                var holders: [Key: ResidentAudit.Holder] = [:]
                for row in rows {
                    let arguments: [CellValue] = [.text(row.table), .text(row.row)]
                    for r in try connection.query("""
                        SELECT \(who), CAST(sum(x.n) AS BIGINT), min(x.received_ms), max(x.received_ms) FROM history x
                        LEFT JOIN devices d ON d.no = x.device_no LEFT JOIN users u ON u.id = d.user_id
                        WHERE x.tbl = ? AND x.row_id = ? GROUP BY 1, 2
                        """, arguments) {
                        count(&changes[Key(user: r[0].string ?? "?", device: r[1].string ?? "?", table: row.table), default: Tally()],
                              row: row.row, cells: Int(r[2].int64 ?? 0), first: r[3].int64.map(iso8601) ?? "", last: r[4].int64.map(iso8601) ?? "")
                    }
                    // Deliveries name the device by number and keep milliseconds (decision 0032).
                    for r in try connection.query("""
                        SELECT coalesce(u.name, '?'), d.name, min(x.first_ms), max(x.last_ms),
                               CAST(sum(CASE WHEN x.removal_seq IS NULL OR x.removal_seq > d.confirmed_seq THEN 1 ELSE 0 END) AS BIGINT),
                               min(CASE WHEN x.removal_seq IS NULL OR x.removal_seq > d.confirmed_seq THEN x.first_ms END),
                               CAST(sum(CASE WHEN x.removal_seq > d.confirmed_seq THEN 1 ELSE 0 END) AS BIGINT)
                        FROM deliveries x
                        JOIN devices d ON d.no = x.device_no LEFT JOIN users u ON u.id = d.user_id
                        WHERE x.tbl = ? AND x.row_id = ? GROUP BY 1, 2
                        """, arguments) {
                        let user = r[0].string ?? "?", device = r[1].string ?? "?"
                        count(&receipts[Key(user: user, device: device, table: row.table), default: Tally()],
                              row: row.row, cells: 0, first: r[2].int64.map(iso8601) ?? "", last: r[3].int64.map(iso8601) ?? "")
                        if (r[4].int64 ?? 0) > 0 {
                            let since = r[5].int64.map(iso8601)
                            var holder = holders[Key(user: user, device: device, table: "")]
                                ?? ResidentAudit.Holder(user: user, device: device, rows: 0, since: since ?? "", toDelete: 0)
                            holder.rows += 1
                            holder.toDelete += (r[6].int64 ?? 0) > 0 ? 1 : 0
                            if let since, since < holder.since { holder.since = since }
                            holders[Key(user: user, device: device, table: "")] = holder
                        }
                    }
                }
                let views = try rows.flatMap { try store.views.views(of: $0, connection) }
                    .sorted { ($0.at, $0.device, $0.table) < ($1.at, $1.device, $1.table) }
                return ResidentAudit(
                    rows: rows,
                    changes: changes.map { key, tally in
                        ResidentAudit.ChangeSummary(user: key.user, device: key.device, table: key.table, rows: tally.rows.count,
                                                    cells: tally.cells, first: tally.first, last: tally.last)
                    }.sorted { ($0.first, $0.user, $0.table) < ($1.first, $1.user, $1.table) },
                    receipts: receipts.map { key, tally in
                        ResidentAudit.ReceiptSummary(user: key.user, device: key.device, table: key.table, rows: tally.rows.count,
                                                     first: tally.first, last: tally.last)
                    }.sorted { ($0.first, $0.user, $0.table) < ($1.first, $1.user, $1.table) },
                    holders: holders.values.sorted { ($0.since, $0.device) < ($1.since, $1.device) },
                    views: views)
            }
        }
    }
}
