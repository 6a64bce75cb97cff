import KeukentafelProtocol

/// Reading what a window of a push needs from the store in a few statements instead of two per
/// change: the changes seen before (from their rows' history), and the records of the rows the window writes to.
extension PushContext {
    /// Changes applied one window at a time: large enough that the reads are a few statements, small
    /// enough that one window's ids fit in a statement on both databases.
    static let windowSize = 500

    /// Reads the earlier results of the window's change ids and the cells of its rows not yet cached.
    mutating func prefetch(_ changes: [Change], _ window: Range<Int>, refused: [Int: ChangeRejection]) throws {
        if rowCache.count > 50_000 {  // bound memory on huge batches; nothing is unwritten between windows
            rowCache.removeAll(keepingCapacity: true)
            lastRow = nil
        }
        earlier.removeAll(keepingCapacity: true)
        repeatedIDs.removeAll(keepingCapacity: true)
        // A device's change ids are `<node>-<zero-padded counter>`: most are above their node's mark
        // and need no lookup (ChangeMarks). The rest (retries, the office's ids) are looked up in the
        // history of the rows they write.
        var lookups: [String: (rows: Set<String>, ids: Set<String>)] = [:]
        // Ascending ids are all different; only a window whose ids do not ascend is searched for repeats.
        var ascending = true
        var previousID: String?
        var uncachedRows: [String: [String]] = [:]
        var previous: (table: String, row: String)?
        for index in window where refused.isEmpty || refused[index] == nil {
            let change = changes[index]
            if ascending, let last = previousID, !last.utf8.lexicographicallyPrecedes(change.id.utf8) { ascending = false }
            previousID = change.id
            if try !marks.isSurelyNew(change, connection) {
                lookups[change.table, default: ([], [])].rows.insert(change.row)
                lookups[change.table, default: ([], [])].ids.insert(change.id)
            }
            if let previous, previous.row == change.row, previous.table == change.table { continue }
            previous = (change.table, change.row)
            if rowCache[RowAddress(table: change.table, row: change.row)] == nil {
                uncachedRows[change.table, default: []].append(change.row)
            }
        }
        if !ascending {
            var seen = Set<String>(minimumCapacity: window.count)
            for index in window where (refused.isEmpty || refused[index] == nil) && !seen.insert(changes[index].id).inserted {
                repeatedIDs.insert(changes[index].id)
            }
        }
        try readUncachedRows(uncachedRows)
        for (table, lookup) in lookups.sorted(by: { $0.key < $1.key }) {
            let rows = lookup.rows.sorted()
            for start in stride(from: 0, to: rows.count, by: Self.windowSize) {
                let slice = Array(rows[start..<min(start + Self.windowSize, rows.count)])
                earlier.merge(try recordedChanges(table: table, rows: slice, ids: lookup.ids)) { first, _ in first }
            }
        }
    }

    /// Reads the records of rows not in the row cache yet, per table in one statement per window.
    mutating func readUncachedRows(_ uncachedRows: [String: [String]]) throws {
        for (table, rows) in uncachedRows {
            // A new row's cells are given room at once: growing them cell by cell showed in profiles.
            let columns = store.dataModel.table(named: table)?.columns.count ?? 0
            var unread: [String] = []
            for row in rows {
                let address = RowAddress(table: table, row: row)
                if let cells = readBefore.records.removeValue(forKey: address) {
                    rowCache[address] = CachedRow(consume cells)
                } else if readBefore.absent.remove(address) != nil {
                    rowsNewInBatch.insert(address)
                    rowCache[address] = CachedRow(RowCells(minimumCapacity: columns + 1))
                } else {
                    unread.append(row)
                }
            }
            guard !unread.isEmpty else { continue }
            let found = try Records(connection, store: store).cells(table: table, rows: unread)
            for row in unread {
                let address = RowAddress(table: table, row: row)
                if let cells = found[row] {
                    rowCache[address] = CachedRow(cells)
                } else {
                    // No cells at all, so none older than this batch (every write goes through this cache).
                    rowsNewInBatch.insert(address)
                    rowCache[address] = CachedRow(RowCells(minimumCapacity: columns + 1))
                }
            }
        }
    }

    /// `(?, ?, …)` with `count` placeholders.
    static func placeholders(_ count: Int) -> String {
        "(?" + String(repeating: ", ?", count: count - 1) + ")"
    }

    /// `(?, ?, …)` for an `IN` list of `count` ids, rounded up to a power of two so that a handful of
    /// statements serve every window (on PostgreSQL a statement not seen before costs a parse and a
    /// round trip for its parameter types). `bindIDs` repeats the last id in the extra places.
    static func idListPlaceholders(_ count: Int) -> String {
        placeholders(idListSize(count))
    }

    static func idListSize(_ count: Int) -> Int {
        var size = 1
        while size < count { size *= 2 }
        return size
    }

    /// Binds `ids` from parameter `first` on, padded as `idListPlaceholders` made room for.
    static func bindIDs<IDs: BidirectionalCollection<String>>(_ ids: IDs, to stmt: any StoreStatement, from first: Int32) throws {
        var at = first
        for id in ids { try stmt.bind(id, at: at); at += 1 }
        guard let last = ids.last else { return }
        for _ in ids.count..<idListSize(ids.count) { try stmt.bind(last, at: at); at += 1 }
    }
}
