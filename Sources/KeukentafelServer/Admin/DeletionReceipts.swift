import KeukentafelProtocol

/// Which devices still hold what they were told to delete (issue 21, decision 0028).
///
/// A device's receipt is its cursor: pages are applied whole, with their cursor, so a device that comes
/// back with cursor C has applied every eviction and purge the feed sent it up to C
/// (`devices.confirmed_seq`). A delivered row the device was told to delete carries the cursor of that
/// page (`deliveries.removal_seq`); after an erasure, which removes the deliveries with the rows, the
/// devices that held them are kept in `erasure_receipts` until they confirm the purge.
public struct DeletionReceipts: Sendable {
    let store: ServerStore

    init(store: ServerStore) { self.store = store }

    /// A deletion a device has been told of and not yet confirmed.
    public struct Pending: Codable, Sendable, Equatable {
        /// The device's name, and its user.
        public var device: String
        public var user: String
        /// `evicted` (rows that left the device's scopes) or `erased` (an erasure's purge).
        public var kind: String
        /// Rows concerned.
        public var rows: Int
        /// Since when the device has been told (ISO-8601).
        public var since: String
        /// The device's last contact with the server (its newest delivery), if any.
        public var lastSeen: String?
    }

    /// Deletions not confirmed, told at least `days` days ago (0: all), oldest first.
    public func unconfirmed(olderThanDays days: Int = 0) throws -> [Pending] {
        let cutoffMilliseconds = store.clock() - Int64(max(0, days)) * 86_400_000
        let cutoff = iso8601(cutoffMilliseconds)
        return try store.reader.withConnection { connection in
            var pending: [Pending] = []
            for row in try connection.query("""
                SELECT d.name, coalesce(u.name, '?'), count(*), min(x.removal_ms), d.no FROM deliveries x
                JOIN devices d ON d.no = x.device_no LEFT JOIN users u ON u.id = d.user_id
                WHERE x.removal_seq IS NOT NULL AND x.removal_seq > d.confirmed_seq AND x.removal_ms <= ?
                GROUP BY d.no, d.name, u.name
                """, [.integer(cutoffMilliseconds)]) {
                pending.append(Pending(device: row[0].string ?? "?", user: row[1].string ?? "?", kind: "evicted", rows: Int(row[2].int64 ?? 0),
                                       since: row[3].int64.map(iso8601) ?? "", lastSeen: try lastSeen(number: row[4], connection)))
            }
            for row in try connection.query("""
                SELECT d.name, coalesce(u.name, '?'), CAST(sum(r.rows) AS BIGINT), min(r.erased_at), d.id FROM erasure_receipts r
                JOIN devices d ON d.id = r.device LEFT JOIN users u ON u.id = d.user_id
                WHERE r.purge_seq > d.confirmed_seq AND r.erased_at <= ?
                GROUP BY d.id, d.name, u.name
                """, [.text(cutoff)]) {
                let number = try connection.scalar("SELECT no FROM devices WHERE id = ?", [row[4]]) ?? .null
                pending.append(Pending(device: row[0].string ?? "?", user: row[1].string ?? "?", kind: "erased", rows: Int(row[2].int64 ?? 0),
                                       since: row[3].string ?? "", lastSeen: try lastSeen(number: number, connection)))
            }
            return pending.sorted { ($0.since, $0.device) < ($1.since, $1.device) }
        }
    }

    /// When the device (by its number) was last sent a row.
    private func lastSeen(number: CellValue, _ connection: any StoreConnection) throws -> String? {
        try connection.scalar("SELECT max(last_ms) FROM deliveries WHERE device_no = ?", [number])?.int64.map(iso8601)
    }

    /// Inside an erasure's transaction, before the deliveries of `rows` go: notes, per device that still
    /// holds some of them, the purge it must confirm (`purgeSequence`, the feed's head after the purge
    /// entries). Returns the names of those devices.
    func noteErasure(of rows: [RowReference], subject: String, purgeSequence: Int64, _ connection: any StoreConnection) throws -> [String] {
        var held: [String: Int] = [:]
        for row in rows {
            for entry in try connection.query("""
                SELECT d.id FROM deliveries x JOIN devices d ON d.no = x.device_no
                WHERE x.tbl = ? AND x.row_id = ? AND (x.removal_seq IS NULL OR x.removal_seq > d.confirmed_seq)
                """, [.text(row.table), .text(row.row)]) {
                if let device = entry[0].string { held[device, default: 0] += 1 }
            }
        }
        let now = iso8601(store.clock())
        var names: [String] = []
        for (device, count) in held.sorted(by: { $0.key < $1.key }) {
            try connection.run("""
                INSERT INTO erasure_receipts (subject, device, rows, purge_seq, erased_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (subject, device) DO UPDATE SET rows = excluded.rows, purge_seq = excluded.purge_seq, erased_at = excluded.erased_at
                """, [.text(subject), .text(device), .integer(Int64(count)), .integer(purgeSequence), .text(now)])
            if let name = try connection.scalar("SELECT name FROM devices WHERE id = ?", [.text(device)])?.string { names.append(name) }
        }
        return names.sorted()
    }

    /// For an erased resident (by the hashed subject): the devices that have not yet confirmed the purge.
    /// A lost device's receipt of its wipe: it holds nothing any more. Every row it received counts as
    /// deleted and confirmed (so the audit no longer lists it as a holder, and no erasure or eviction
    /// waits for it), and the audit trail says so. Only a device reported lost may send it.
    public func confirmWipe(device: String, receipt: WipeReceipt) throws {
        try store.writer.withLock { connection in
            try connection.transaction {
                guard let name = try connection.scalar("SELECT name FROM devices WHERE id = ? AND lost_at IS NOT NULL",
                                                       [.text(device)])?.string else {
                    throw StoreRefusal(.notPermitted, "only a device reported lost confirms a wipe")
                }
                let head = try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 ?? 0
                let now = iso8601(store.clock())
                let detail = receipt.description
                try connection.run("""
                    UPDATE deliveries SET removal_seq = ?, removal_ms = ?
                    WHERE device_no = (SELECT no FROM devices WHERE id = ?) AND removal_seq IS NULL
                    """, [.integer(head), .integer(store.clock()), .text(device)])
                try connection.run("""
                    UPDATE devices SET wiped_at = ?, wipe_detail = ?, confirmed_seq = CASE WHEN confirmed_seq > ? THEN confirmed_seq ELSE ? END
                    WHERE id = ?
                    """, [.text(now), .text(detail), .integer(head), .integer(head), .text(device)])
                try store.audit.append(connection, actor: name, action: "device.wiped", subject: name, detail: detail)
            }
        }
    }

    public func unconfirmedErasure(subject: String) throws -> [String] {
        try store.reader.withConnection { connection in
            try connection.query("""
                SELECT d.name FROM erasure_receipts r JOIN devices d ON d.id = r.device
                WHERE r.subject = ? AND r.purge_seq > d.confirmed_seq ORDER BY d.name
                """, [.text(subject)]).compactMap { $0[0].string }
        }
    }
}
