import KeukentafelProtocol

/// Which change ids are surely new, without an index over every change ever pushed (decision 0018).
///
/// A replica's change ids are `<its node, 16 hex>-<zero-padded counter>` and its counter only grows.
/// The store keeps, per node, the greatest counter in its history (`change_marks`). A change whose id
/// has that form for its own version's node and a counter above the mark was never accepted, so it
/// needs no lookup; any other change (a retry, or an id of another form, such as the office's) is
/// looked up in the history of the row it writes.
struct ChangeMarks {
    /// The marks read so far in this push, by node.
    private var marks: [Int64: Int64] = [:]
    /// Marks this push raised, written by `save`.
    private var raised: [Int64: Int64] = [:]

    /// The counter of a replica change id written by `change`'s own node, or `nil` for any other id.
    func counter(of change: Change) -> Int64? { counter(id: change.id, node: change.version.node) }

    /// The counter of `id` if it is `<node, 16 hex>-<digits>`, or `nil`.
    func counter(id: String, node: NodeID) -> Int64? { Self.replicaCounter(id: id, node: node)?.value }

    /// A replica's own change id, `<its node, 16 lowercase hex>-<1 to 18 digits>`: the counter and how
    /// many digits it was written with (zeros in front included); `nil` for any other id.
    static func replicaCounter(id: String, node: NodeID) -> (value: Int64, digits: Int)? {
        var id = id
        return id.withUTF8 { bytes -> (value: Int64, digits: Int)? in
            guard bytes.count > 17, bytes.count <= 17 + 18, bytes[16] == UInt8(ascii: "-"),
                  parseHex16(bytes[0..<16]) == node.rawValue else { return nil }
            var value: Int64 = 0
            for index in 17..<bytes.count {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int64(digit)
            }
            return (value, bytes.count - 17)
        }
    }

    /// Whether `change` was surely never accepted: its counter is above its node's mark.
    mutating func isSurelyNew(_ change: Change, _ connection: any StoreConnection) throws -> Bool {
        guard let counter = counter(of: change) else { return false }
        return counter > (try mark(of: Int64(bitPattern: change.version.node.rawValue), connection))
    }

    /// Notes that a change went into the history.
    mutating func note(id: String, version: CellVersion) {
        guard let counter = counter(id: id, node: version.node) else { return }
        let node = Int64(bitPattern: version.node.rawValue)
        if counter > (raised[node] ?? Int64.min) { raised[node] = counter }
        if counter > (marks[node] ?? Int64.min) { marks[node] = counter }
    }

    private mutating func mark(of node: Int64, _ connection: any StoreConnection) throws -> Int64 {
        if let known = marks[node] { return known }
        let stmt = try connection.literalStatement("SELECT counter FROM change_marks WHERE node = ?")
        defer { stmt.reset() }
        try stmt.bind(node, at: 1)
        let mark = try stmt.step() ? stmt.int64(0) : -1
        marks[node] = mark
        return mark
    }

    /// Writes the raised marks, in the push's transaction.
    mutating func save(_ connection: any StoreConnection) throws {
        for (node, counter) in raised.sorted(by: { $0.key < $1.key }) {
            try Self.raise(node: node, to: counter, connection)
        }
        raised.removeAll()
    }

    static func raise(node: Int64, to counter: Int64, _ connection: any StoreConnection) throws {
        let greatest = connection.dialect == .sqlite ? "max" : "greatest"
        try connection.run("""
            INSERT INTO change_marks (node, counter) VALUES (?, ?)
            ON CONFLICT (node) DO UPDATE SET counter = \(greatest)(change_marks.counter, excluded.counter)
            """, [.integer(node), .integer(counter)])
    }
}
