import KeukentafelProtocol

extension StoreSchema {
    /// Moves records kept as JSON text (decision 0020, releases before decision 0031) to the binary
    /// form of `RowCoding`: on PostgreSQL the column becomes `bytea` first (the text's UTF-8 bytes), then
    /// every JSON record is decoded and written again (`rewriteJSON`). Inside the caller's transaction, so a crash leaves
    /// every record in the old form or every one in the new. Runs before `migrateCells`, which writes
    /// records in the new form. Stores made new pass through at once and are marked.
    static func migrateRecordFormat(_ connection: any StoreConnection) throws {
        // The mark says "binary" (2); format 3 (column numbers, decision 0034) needs no move.
        guard try !hasFormat("record_format", RowCoding.formatWithNames, connection) else { return }
        try makeBytes(table: "records", column: "cells", connection)
        try rewriteJSON(table: "records", column: "cells", key: ["tbl", "row_id"], from: [.text(""), .text("")], connection) { json in
            RowCoding.encode(try JSONRowCoding.decode(String(decoding: json, as: UTF8.self)), columns: .none, devices: .none)
        }
        try connection.setMeta("record_format", .integer(Int64(RowCoding.formatWithNames)))
    }

    /// Replaces every value of `column` that is JSON text (it starts with `[`) by `convert`'s bytes for
    /// it; values in a binary form already are left. In windows of rows in `key` order, after the key
    /// values `from`, so no statement reads the table while another writes it and each window is an
    /// index range (a row-value comparison; SQLite's plan for `a > ? OR (a = ? AND b > ?)` rescans).
    static func rewriteJSON(table: String, column: String, key: [String], from start: [CellValue], window size: Int = 500,
                            _ connection: any StoreConnection, _ convert: (UnsafeRawBufferPointer) throws -> [UInt8]) throws {
        let keys = key.joined(separator: ", ")
        let read = try connection.cachedStatement("SELECT \(keys), \(column) FROM \(table) WHERE (\(keys)) > ("
            + key.map { _ in "?" }.joined(separator: ", ") + ") ORDER BY \(keys) LIMIT \(size)")
        let update = try connection.cachedStatement("UPDATE \(table) SET \(column) = ? WHERE "
            + key.map { "\($0) = ?" }.joined(separator: " AND "))
        var after = start
        while true {
            var window: [(key: [CellValue], bytes: [UInt8]?)] = []
            try read.bind(after)
            while try read.step() {
                let bytes = try read.withBytes(Int32(key.count)) { value -> [UInt8]? in
                    value.first == UInt8(ascii: "[") ? try convert(value) : nil
                } ?? nil
                window.append(((0..<key.count).map { read.value(Int32($0)) }, bytes))
            }
            read.reset()
            guard let last = window.last else { return }
            after = last.key
            for row in window {
                guard let bytes = row.bytes else { continue }
                try update.bind(bytes: bytes, at: 1)
                for (index, value) in row.key.enumerated() { try update.bind(value, at: Int32(index + 2)) }
                try update.run()
            }
        }
    }


    /// On PostgreSQL, a `text` column becomes `bytea` holding its text's UTF-8 bytes (which the JSON
    /// readers still read); SQLite stores bytes in any column.
    static func makeBytes(table: String, column: String, _ connection: any StoreConnection) throws {
        guard connection.dialect == .postgresql else { return }
        let type = try connection.scalar("""
            SELECT data_type FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?
            """, [.text(table), .text(column)])?.string
        guard type == "text" else { return }
        try connection.execute("ALTER TABLE \(table) ALTER COLUMN \(column) TYPE BYTEA USING convert_to(\(column), 'UTF8')")
    }
}

/// The JSON text of a record before decision 0031, read only to move it to `RowCoding`'s form: an
/// array whose first element lists the devices that wrote the row's cells, then one array per cell,
/// `[column, value, hlc, node, seq, device]`, with `device` an index into that list (or null).
enum JSONRowCoding {
    static func decode(_ text: String) throws -> RowCells {
        var cells: RowCells = [:]
        var text = text
        try text.withUTF8 { bytes in
            var reader = JSONReader(UnsafeRawBufferPointer(bytes))
            var devices: [String] = []
            var first = true
            do {
                try reader.array { reader in
                    if first {
                        first = false
                        try reader.array { reader in devices.append(try reader.string()) }
                        return
                    }
                    try reader.expect(UInt8(ascii: "["))
                    let column = try reader.string()
                    try reader.expect(UInt8(ascii: ","))
                    let value = try reader.cellValue()
                    try reader.expect(UInt8(ascii: ","))
                    let hlc = try reader.integer()
                    try reader.expect(UInt8(ascii: ","))
                    let node = try reader.integer()
                    try reader.expect(UInt8(ascii: ","))
                    let sequence = try reader.integer()
                    try reader.expect(UInt8(ascii: ","))
                    var device: String?
                    if try !reader.isNull() {
                        let index = Int(try reader.integer())
                        guard devices.indices.contains(index) else { throw reader.fail("a cell's device index names no device") }
                        device = devices[index]
                    }
                    try reader.expect(UInt8(ascii: "]"))
                    guard let version = CellVersion(hlc: .integer(hlc), node: .integer(node)) else {
                        throw reader.fail("a cell's version is not valid")
                    }
                    cells[column] = StoredCell(value: VersionedValue(value: value, version: version), device: device, sequence: sequence)
                }
                try reader.end()
                if first { throw reader.fail("a record starts with its list of devices") }
            } catch let error as JSONReader.Error {
                throw StoreError.corrupt("a row's record is not valid: \(error)")
            }
        }
        return cells
    }
}
