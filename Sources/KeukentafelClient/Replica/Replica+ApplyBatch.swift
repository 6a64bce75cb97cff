import KeukentafelProtocol
import KeukentafelSQLite

/// The rows of a page this replica never had, gathered while the page's rows are applied and written
/// after its last row in multi-row statements: the versions (`_kt_versions`) and the app rows, a few
/// dozen rows per statement instead of two statements per row. A bootstrap is almost only such rows,
/// and profiles of `kt sync` put the cost of running a statement (not of the B-tree work it does) at a
/// large share of the apply.
///
/// Nothing reads a gathered row before it is written: only a later row of the same page could, and
/// `applyRow` writes the batch first when it meets a row the batch holds. All of it happens inside
/// the page's transaction, so a page still applies whole or not at all.
struct ApplyBatch {
    struct Key: Hashable {
        var table: String
        var row: String
    }

    struct NewRow {
        var row: String
        /// The values in the order of the shape's columns.
        var values: [CellValue]
    }

    private(set) var versions: [(key: Key, text: String)] = []
    private(set) var rows: [Replica.UpsertShape: [NewRow]] = [:]
    /// The order in which shapes first appeared, so rows go in the order they came.
    private(set) var shapes: [Replica.UpsertShape] = []
    private var keys: Set<Key> = []

    var isEmpty: Bool { keys.isEmpty }

    func holds(table: String, row: String) -> Bool { keys.contains(Key(table: table, row: row)) }

    mutating func add(_ plan: Replica.TablePlan, row: String, versions rowVersions: RowVersions, values: [(String, CellValue)]) {
        let key = Key(table: plan.table.name, row: row)
        keys.insert(key)
        versions.append((key, rowVersions.encoded))
        let (shape, ordered) = Replica.upsertShape(plan, values: values)
        if rows[shape] == nil { shapes.append(shape) }
        rows[shape, default: []].append(NewRow(row: row, values: ordered.map(\.1)))
    }
}

extension Replica {
    /// Rows per multi-row statement: at most `limit`, else the largest power of two that fits, so a
    /// table needs few distinct statements.
    static func batchRows(_ remaining: Int, limit: Int) -> Int {
        if remaining >= limit { return limit }
        var rows = 1
        while rows * 2 <= remaining { rows *= 2 }
        return rows
    }

    /// Writes what `applyBatch` gathered and empties it.
    func flushApplyBatch() throws {
        guard let batch = applyBatch, !batch.isEmpty else { return }
        applyBatch = ApplyBatch()
        var start = 0
        while start < batch.versions.count {
            let count = Self.batchRows(batch.versions.count - start, limit: 64)
            let stmt = try versionWrite(rows: count)
            stmt.reset()
            var at: Int32 = 1
            for entry in batch.versions[start..<start + count] {
                try stmt.bind(entry.key.table, at: at)
                try stmt.bind(entry.key.row, at: at + 1)
                try stmt.bind(entry.text, at: at + 2)
                at += 3
            }
            try stmt.run()
            start += count
        }
        for shape in batch.shapes {
            guard let rows = batch.rows[shape], let plan = tablePlan(shape.table) else { continue }
            var start = 0
            while start < rows.count {
                var sized = shape
                sized.rows = Self.batchRows(rows.count - start, limit: 32)
                let stmt = try upsertStatement(plan, shape: sized)
                var at: Int32 = 1
                for row in rows[start..<start + sized.rows] {
                    try stmt.bind(row.row, at: at)
                    at += 1
                    for value in row.values {
                        try stmt.bind(value, at: at)
                        at += 1
                    }
                }
                try stmt.run()
                start += sized.rows
            }
        }
    }

    /// `INSERT INTO _kt_versions … ON CONFLICT DO UPDATE` of `rows` rows, prepared once per size.
    private func versionWrite(rows: Int) throws -> SQLiteStatement {
        if let known = versionWrites[rows] { return known }
        let values = Array(repeating: "(?, ?, ?)", count: rows).joined(separator: ", ")
        let stmt = try connection.prepare("""
            INSERT INTO _kt_versions (tbl, row_id, versions) VALUES \(values)
            ON CONFLICT (tbl, row_id) DO UPDATE SET versions = excluded.versions
            """)
        versionWrites[rows] = stmt
        return stmt
    }
}
