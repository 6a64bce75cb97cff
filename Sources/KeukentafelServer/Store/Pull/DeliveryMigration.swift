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
}
