import KeukentafelProtocol

extension FeedReader {
    /// Notes what pulls sent (`Delivery`), many devices in one transaction and few statements: a push that
    /// wakes a region's long-polls would otherwise commit once per device, and on PostgreSQL every
    /// statement is a round trip. Per batch: one read of the devices' numbers, one update of how far each
    /// was sent and came back, and the delivered rows of all of them in multi-row statements.
    func record(_ deliveries: [Delivery]) throws {
        guard !deliveries.isEmpty else { return }
        let at = store.clock()
        try store.writer.withLock { connection in
            try connection.transaction {
                let numbers = try deviceNumbers(Set(deliveries.map(\.device)), connection)
                try noteProgress(of: deliveries, connection)
                var rows = DeliveredRows(at: at, connection: connection)
                for delivery in deliveries {
                    // A device the store does not know received nothing to note.
                    guard let number = numbers[delivery.device] else { continue }
                    if !delivery.removals.isEmpty {
                        // In the order the pages were sent: a row delivered by an earlier page of this batch first.
                        try rows.flush()
                        for row in delivery.removals {
                            try connection.run("""
                                UPDATE deliveries SET removal_seq = ?, removal_ms = ? WHERE tbl = ? AND row_id = ? AND device_no = ? AND removal_seq IS NULL
                                """, [.integer(delivery.removalSequence), .integer(at), .text(row.table), .text(row.row), .integer(number)])
                        }
                    }
                    for row in delivery.rows { try rows.append(row, device: number) }
                }
                try rows.flush()
            }
        }
    }

    /// The numbers deliveries name `devices` by (decision 0032), in windows of ids.
    private func deviceNumbers(_ devices: Set<String>, _ connection: any StoreConnection) throws -> [String: Int64] {
        var numbers: [String: Int64] = [:]
        let ids = devices.sorted()
        var start = 0
        while start < ids.count {
            let window = ids[start..<min(ids.count, start + 256)]
            let stmt = try connection.cachedStatement("SELECT id, no FROM devices WHERE id IN " + PushContext.idListPlaceholders(window.count))
            defer { stmt.reset() }
            try PushContext.bindIDs(window, to: stmt, from: 1)
            while try stmt.step() {
                if let id = stmt.text(0), !stmt.isNull(1) { numbers[id] = stmt.int64(1) }
            }
            start += window.count
        }
        return numbers
    }

    /// Raises each device's informed and confirmed sequence to what its delivery says (never lowers them),
    /// and clears the start-over flag of the devices that started over: one statement for many devices.
    private func noteProgress(of deliveries: [Delivery], _ connection: any StoreConnection) throws {
        var progress: [String: (informed: Int64, confirmed: Int64, restarted: Bool)] = [:]
        for delivery in deliveries where delivery.informed != nil || delivery.confirmed != nil || delivery.restarted {
            // A value not given is 0, which never raises a column.
            let earlier = progress[delivery.device] ?? (0, 0, false)
            progress[delivery.device] = (max(earlier.informed, delivery.informed ?? 0), max(earlier.confirmed, delivery.confirmed ?? 0),
                                         earlier.restarted || delivery.restarted)
        }
        let entries = progress.sorted { $0.key < $1.key }
        var start = 0
        while start < entries.count {
            // Statements of few sizes (on PostgreSQL each new size is a parse and a round trip).
            let count = PendingWrites.statementRows(entries.count - start, connection.dialect)
            let values = Array(repeating: "(?, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))", count: count).joined(separator: ", ")
            let stmt = try connection.cachedStatement("""
                UPDATE devices SET
                    informed_seq = CASE WHEN informed_seq < v.column2 THEN v.column2 ELSE informed_seq END,
                    confirmed_seq = CASE WHEN confirmed_seq < v.column3 THEN v.column3 ELSE confirmed_seq END,
                    resync = CASE WHEN v.column4 = 1 THEN 0 ELSE resync END
                FROM (VALUES \(values)) AS v WHERE devices.id = v.column1
                """)
            defer { stmt.reset() }
            var at: Int32 = 1
            for (device, entry) in entries[start..<start + count] {
                try stmt.bind(device, at: at)
                try stmt.bind(entry.informed, at: at + 1)
                try stmt.bind(entry.confirmed, at: at + 2)
                try stmt.bind(Int64(entry.restarted ? 1 : 0), at: at + 3)
                at += 4
            }
            try stmt.run()
            start += count
        }
    }
}

/// The delivered rows of a batch, many per statement. One statement may not touch a row twice on
/// PostgreSQL (`ON CONFLICT`), so a row and device met again (two pages of one device in a batch) first
/// sends what is gathered.
private struct DeliveredRows {
    struct Key: Hashable {
        var table: String
        var row: String
        var device: Int64
    }

    let at: Int64
    let connection: any StoreConnection
    private var chunk: [Key] = []
    private var inChunk: Set<Key> = []

    init(at: Int64, connection: any StoreConnection) {
        self.at = at
        self.connection = connection
    }

    mutating func append(_ row: RowReference, device: Int64) throws {
        let key = Key(table: row.table, row: row.row, device: device)
        if inChunk.contains(key) { try flush() }
        chunk.append(key)
        inChunk.insert(key)
        if chunk.count == PendingWrites.rowsPerStatement(connection.dialect) { try flush() }
    }

    mutating func flush() throws {
        var start = 0
        while start < chunk.count {
            // Statements of few sizes (on PostgreSQL each new size is a parse and a round trip).
            let count = PendingWrites.statementRows(chunk.count - start, connection.dialect)
            let stmt = try connection.cachedStatement(PendingWrites.insertSQL(
                into: "deliveries (tbl, row_id, device_no, first_ms, last_ms, times)", columns: 6, rows: count,
                suffix: " ON CONFLICT (tbl, row_id, device_no) DO UPDATE SET last_ms = excluded.last_ms, times = deliveries.times + 1,"
                    + " removal_seq = NULL, removal_ms = NULL"))
            var position: Int32 = 0
            for key in chunk[start..<start + count] {
                try stmt.bind(key.table, at: position + 1)
                try stmt.bind(key.row, at: position + 2)
                try stmt.bind(key.device, at: position + 3)
                try stmt.bind(at, at: position + 4)
                try stmt.bind(at, at: position + 5)
                try stmt.bind(Int64(1), at: position + 6)
                position += 6
            }
            try stmt.run()
            start += count
        }
        chunk.removeAll(keepingCapacity: true)
        inChunk.removeAll(keepingCapacity: true)
    }
}
