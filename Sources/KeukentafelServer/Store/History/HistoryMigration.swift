import KeukentafelProtocol

extension StoreSchema {
    /// Moves a history kept per cell (`changes`, releases before decision 0018) into `history`, one
    /// entry per run of changes one push made to one row, in arrival order; sets the change marks from
    /// it and drops `changes`. Inside the caller's transaction: after a crash the store has the old
    /// layout or the new one, never a mix.
    static func migrateHistory(_ connection: any StoreConnection) throws {
        guard try hasTable("changes", connection) else { return }
        let order = connection.dialect == .sqlite ? "rowid" : "id"
        let read = try connection.cachedStatement("""
            SELECT change_id, tbl, row_id, col, value, hlc, node, base_hlc, base_node, device, received_at, status, won, conflict_id
            FROM changes ORDER BY \(order)
            """)
        var marks = ChangeMarks()
        var entry: (table: String, row: String, device: String?, receivedAt: String, changes: [RecordedChange])?
        var entries: [(table: String, row: String, device: String?, receivedAt: String, changes: [RecordedChange])] = []
        while try read.step() {
            guard let id = read.text(0), let table = read.text(1), let row = read.text(2), let column = read.text(3),
                  let version = CellVersion(hlc: read.value(5), node: read.value(6)), let receivedAt = read.text(10) else {
                throw StoreError.corrupt("a change in the per-cell history lacks its id, cell, version or arrival time")
            }
            let device = read.text(9)
            let change = RecordedChange(
                id: id, column: column, value: read.value(4), version: version, base: CellVersion(hlc: read.value(7), node: read.value(8)),
                status: ChangeStatus(rawValue: read.text(11) ?? "") ?? .applied,
                won: read.isNull(12) ? nil : read.int64(12) != 0, conflict: read.isNull(13) ? nil : read.int64(13))
            marks.note(id: id, version: version)
            if let current = entry, current.table == table, current.row == row, current.device == device, current.receivedAt == receivedAt {
                entry?.changes.append(change)
            } else {
                if let current = entry { entries.append(current) }
                entry = (table, row, device, receivedAt, [change])
            }
        }
        read.reset()
        if let current = entry { entries.append(current) }
        // Into the layout of decision 0035: a registered device by its number, any other writer by name.
        try numberDevices(connection)
        let numbers = try DeviceNumbers.read(connection)
        let insert = try connection.cachedStatement("INSERT INTO history (tbl, row_id, device_no, device, received_ms, n, changes) VALUES (?, ?, ?, ?, "
            + milliseconds(fromISO: connection.dialect == .sqlite ? "?" : "CAST(? AS text)", connection.dialect) + ", ?, ?)")
        for entry in entries {
            let number = entry.device.flatMap { numbers.number($0) }
            try insert.bind([.text(entry.table), .text(entry.row), number.map { CellValue.integer(Int64($0)) } ?? .null,
                             number == nil ? entry.device.map(CellValue.text) ?? .null : .null, .text(entry.receivedAt),
                             .integer(Int64(entry.changes.count))])
            try insert.bind(bytes: HistoryCoding.encode(entry.changes, columns: .none), at: 7)
            try insert.run()
        }
        try marks.save(connection)
        try connection.execute("DROP TABLE changes")
    }
}

extension StoreSchema {
    /// Moves history entries kept as JSON text (decision 0018, releases before decision 0031) to the
    /// binary form of `HistoryCoding`: on PostgreSQL the column becomes `bytea` first, then every JSON
    /// entry is decoded and written again (`rewriteJSON`). Inside the caller's transaction.
    static func migrateHistoryFormat(_ connection: any StoreConnection) throws {
        // The mark says "binary" (2); format 3 (column numbers, decision 0034) needs no move.
        guard try !hasFormat("history_format", HistoryCoding.formatWithNames, connection) else { return }
        try makeBytes(table: "history", column: "changes", connection)
        try rewriteJSON(table: "history", column: "changes", key: ["id"], from: [.integer(.min)], connection) { json in
            HistoryCoding.encode(try HistoryCoding.decodeJSON(String(decoding: json, as: UTF8.self)), columns: .none)
        }
        try connection.setMeta("history_format", .integer(Int64(HistoryCoding.formatWithNames)))
    }
}
