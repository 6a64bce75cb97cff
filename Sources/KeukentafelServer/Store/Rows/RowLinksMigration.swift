extension StoreSchema {
    /// Moves `row_links` kept twice — by row (its key) and by value (an index), releases before decision
    /// 0033 — into one table keyed by value. Idempotent; inside the caller's write transaction.
    static func migrateRowLinks(_ connection: any StoreConnection) throws {
        let sqlite = connection.dialect == .sqlite
        let oldIndex = sqlite
            ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'row_links_by_value'"
            : "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'row_links_by_value'"
        guard (try connection.scalar(oldIndex)?.int64 ?? 0) > 0 else { return }
        try rebuild("row_links", connection, create: sqlite ? """
            CREATE TABLE row_links_next (
                tbl TEXT NOT NULL, row_id TEXT NOT NULL, col TEXT NOT NULL, value NOT NULL,
                PRIMARY KEY (value, tbl, col, row_id)
            ) WITHOUT ROWID
            """ : """
            CREATE TABLE row_links_next (
                tbl TEXT COLLATE "C" NOT NULL, row_id TEXT COLLATE "C" NOT NULL, col TEXT COLLATE "C" NOT NULL, value BYTEA NOT NULL,
                PRIMARY KEY (value, tbl, col, row_id)
            )
            """, fill: "INSERT INTO row_links_next (tbl, row_id, col, value) SELECT tbl, row_id, col, value FROM row_links")
    }
}
