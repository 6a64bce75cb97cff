extension StoreSchema {
    /// Numbers every device (`devices.no`, for deliveries to name it by) and moves deliveries kept by
    /// device id with ISO times (releases before decision 0032) to device numbers and milliseconds.
    /// Idempotent; inside the caller's write transaction, so after a crash the store has the old layout
    /// or the new one.
    static func migrateDeliveries(_ connection: any StoreConnection) throws {
        try numberDevices(connection)
        guard try hasColumn("deliveries", "device", connection) else { return }
        let sqlite = connection.dialect == .sqlite
        func milliseconds(_ column: String) -> String { Self.milliseconds(fromISO: column, connection.dialect) }
        try rebuild("deliveries", connection, create: sqlite ? """
            CREATE TABLE deliveries_next (
                tbl TEXT NOT NULL, row_id TEXT NOT NULL, device_no INTEGER NOT NULL,
                first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, times INTEGER NOT NULL,
                removal_seq INTEGER, removal_ms INTEGER,
                PRIMARY KEY (tbl, row_id, device_no)
            ) WITHOUT ROWID
            """ : """
            CREATE TABLE deliveries_next (
                tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL, device_no BIGINT NOT NULL,
                first_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL, times BIGINT NOT NULL,
                removal_seq BIGINT, removal_ms BIGINT,
                PRIMARY KEY (tbl, row_id, device_no)
            )
            """,
            // A delivery to a device the store no longer knows names no one: it cannot be kept by number.
            fill: """
            INSERT INTO deliveries_next (tbl, row_id, device_no, first_ms, last_ms, times, removal_seq, removal_ms)
            SELECT x.tbl, x.row_id, d.no, \(milliseconds("x.first_at")), \(milliseconds("x.last_at")), x.times, x.removal_seq,
                   CASE WHEN x.removal_at IS NULL THEN NULL ELSE \(milliseconds("x.removal_at")) END
            FROM deliveries x JOIN devices d ON d.id = x.device
            """)
    }

    /// Devices registered before numbers existed take them in the order of their ids; later ones are
    /// numbered when added (`Accounts.addDevice`). Idempotent.
    static func numberDevices(_ connection: any StoreConnection) throws {
        var next = (try connection.scalar("SELECT max(no) FROM devices")?.int64 ?? 0) + 1
        for row in try connection.query("SELECT id FROM devices WHERE no IS NULL ORDER BY id") {
            try connection.run("UPDATE devices SET no = ? WHERE id = ?", [.integer(next), row[0]])
            next += 1
        }
        try connection.execute("CREATE UNIQUE INDEX IF NOT EXISTS devices_by_no ON devices(no)")
    }

    /// Replaces `table` by `<table>_next`, which `create` makes and `fill` fills from it: the move of a
    /// table to a new key or new columns, inside the caller's transaction.
    static func rebuild(_ table: String, _ connection: any StoreConnection, create: String, fill: String) throws {
        try connection.execute(create)
        try connection.run(fill)
        try connection.execute("DROP TABLE \(table)")
        try connection.execute("ALTER TABLE \(table)_next RENAME TO \(table)")
    }

    /// SQL for the milliseconds since 1970 of `expression`, an ISO-8601 time as `iso8601` writes it.
    static func milliseconds(fromISO expression: String, _ dialect: StoreDialect) -> String {
        dialect == .sqlite ? "CAST(round((julianday(\(expression)) - 2440587.5) * 86400000) AS INTEGER)"
            : "CAST(round(extract(epoch FROM CAST(\(expression) AS timestamptz)) * 1000) AS BIGINT)"
    }

    /// The store's layout as this release leaves it: the number of the last decision that changed how
    /// the store keeps its data. Kept in `meta` (`layout`), so a release older than the store says so
    /// in words instead of failing on a column it does not know.
    static let layout: Int64 = 36

    /// Refuses a store that a newer release moved to a layout this one does not know, before touching it.
    static func refuseNewerLayout(_ connection: any StoreConnection) throws {
        guard try hasTable("meta", connection),
              let stored = try connection.scalar("SELECT value FROM meta WHERE key = 'layout'")?.int64, stored > layout else { return }
        throw StoreError.newerLayout(store: stored, known: layout)
    }

    /// Notes that the store is in this release's layout (after its moves).
    static func noteLayout(_ connection: any StoreConnection) throws {
        try connection.setMeta("layout", .integer(layout))
    }

    /// Whether `table` has `column`.
    static func hasColumn(_ table: String, _ column: String, _ connection: any StoreConnection) throws -> Bool {
        if connection.dialect == .sqlite {
            return try connection.query("SELECT name FROM pragma_table_info(?)", [.text(table)]).contains { $0[0].string == column }
        }
        return (try connection.scalar("""
            SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?
            """, [.text(table), .text(column)])?.int64 ?? 0) > 0
    }
}
