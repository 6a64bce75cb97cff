import KeukentafelProtocol

/// Which layout a store is in, and the steps the moves between layouts are made of (each move in the
/// file of what it moves: `HistoryMigration`, `DeliveryMigration`, `RowLinksMigration`, …).
extension StoreSchema {
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

    /// Whether the store has a table of that name.
    static func hasTable(_ name: String, _ connection: any StoreConnection) throws -> Bool {
        let sql = connection.dialect == .sqlite
            ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
            : "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
        return (try connection.scalar(sql, [.text(name)])?.int64 ?? 0) > 0
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

    /// Whether `table` has `column`.
    static func hasColumn(_ table: String, _ column: String, _ connection: any StoreConnection) throws -> Bool {
        if connection.dialect == .sqlite {
            return try connection.query("SELECT name FROM pragma_table_info(?)", [.text(table)]).contains { $0[0].string == column }
        }
        return (try connection.scalar("""
            SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?
            """, [.text(table), .text(column)])?.int64 ?? 0) > 0
    }

    /// Whether `meta` says the store's values of this kind are in `format` already.
    static func hasFormat(_ key: String, _ format: UInt8, _ connection: any StoreConnection) throws -> Bool {
        try connection.scalar("SELECT value FROM meta WHERE key = ?", [.text(key)])?.int64 == Int64(format)
    }
}
