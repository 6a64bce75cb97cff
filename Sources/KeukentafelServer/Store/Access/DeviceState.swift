import Crypto
import Foundation
import KeukentafelProtocol

/// What the store knows of one device beyond its token (decision 0017): the replica node it writes
/// as, the newest version accepted from that node, and how far the feed was sent to it.
///
/// - A device is bound to the node of its first push, and a node to one device: a push under
///   another node is refused (`node_mismatch`), so nobody writes as someone else's replica, and two
///   replicas initialised with one token are told so instead of silently sharing a device.
/// - `highWater` and `informedSequence` decide whether a write dated before a scope change may
///   still count as written while the writer held the scope (`PushAuthorizer`).
struct DeviceState: Sendable, Equatable {
    var id: String
    var name: String
    var node: NodeID?
    /// The newest HLC accepted from the device's node (0: none yet).
    var highWater: UInt64
    /// The greatest sequence number up to which the device was sent the feed (its pages' cursors,
    /// and the head when it was told to start over); set to the head when the device is registered.
    var informedSequence: Int64
    /// The device was told to start over (its scopes changed) and has not yet pulled from 0.
    var mustResync = false
    /// The newest cursor the device came back with: it applied every page up to there, the evictions
    /// and purges in them included (its deletion receipt).
    var confirmedSequence: Int64 = 0

    /// The device's state inside the caller's transaction; nil for a device the store does not know.
    static func read(_ device: String, _ connection: any StoreConnection) throws -> DeviceState? {
        // Compiled once per connection: every pull and push reads it.
        let row = try connection.literalStatement("SELECT node, node_high_water, informed_seq, name, resync, confirmed_seq FROM devices WHERE id = ?")
        defer { row.reset() }
        try row.bind(device, at: 1)
        guard try row.step() else { return nil }
        return DeviceState(device, row, from: 0)
    }


    /// Binds the device to `node` on its first push, or refuses a node that is not its own.
    ///
    /// A replica moves to a new token (`kt login`) when its old device was revoked or reported lost:
    /// then this device takes the node over, with its high-water mark, and the old device is unbound.
    /// A node whose device still works stays that device's. Returns the device taken over from.
    @discardableResult
    mutating func bind(to node: NodeID, _ connection: any StoreConnection) throws -> String? {
        if let bound = self.node {
            guard bound == node else {
                throw StoreRefusal(.nodeMismatch, "this device ('\(name)') belongs to replica \(bound); this replica is \(node). "
                    + "A token serves one replica: ask the office for a token of its own (`ktd admin device add`), "
                    + "or, if the device's first replica is gone for good, to release it (`ktd admin device release`).")
            }
            return nil
        }
        var takenOver: String?
        if let owner = try connection.query("""
            SELECT id, name, revoked_at IS NOT NULL OR lost_at IS NOT NULL, node_high_water FROM devices WHERE node = ?
            """, [.integer(Int64(node.rawValue))]).first {
            let ownerName = owner[1].string ?? "?"
            guard owner[2].int64 == 1 else {
                throw StoreRefusal(.nodeMismatch, "replica \(node) belongs to another device ('\(ownerName)'), whose token still works; "
                    + "a device cannot write as another device's replica. If this replica moved to a new token, "
                    + "revoke the old device first (`ktd admin device revoke \(ownerName)`).")
            }
            try connection.run("UPDATE devices SET node = NULL WHERE id = ?", [owner[0]])
            highWater = max(highWater, UInt64(max(0, owner[3].int64 ?? 0)))
            try connection.run("UPDATE devices SET node_high_water = ? WHERE id = ?", [.integer(Int64(highWater)), .text(id)])
            takenOver = ownerName
        }
        try connection.run("UPDATE devices SET node = ? WHERE id = ? AND node IS NULL", [.integer(Int64(node.rawValue)), .text(id)])
        self.node = node
        return takenOver
    }

    /// Records the newest version accepted from the device's node.
    mutating func raiseHighWater(to hlc: UInt64, _ connection: any StoreConnection) throws {
        guard hlc > highWater else { return }
        try connection.run("UPDATE devices SET node_high_water = ? WHERE id = ?", [.integer(Int64(hlc)), .text(id)])
        highWater = hlc
    }
}

extension DeviceState {
    /// The state in the current row of `row`, from its column `first` on: node, node_high_water,
    /// informed_seq, name, resync, confirmed_seq of `devices`; nil when the device was not found (its name
    /// is NULL, as in an outer join).
    init?(_ device: String, _ row: any StoreStatement, from first: Int32) {
        guard let name = row.text(first + 3) else { return nil }
        self.init(id: device, name: name, node: row.isNull(first) ? nil : NodeID(rawValue: UInt64(row.int64(first))),
                  highWater: UInt64(max(0, row.int64(first + 1))), informedSequence: row.int64(first + 2),
                  mustResync: row.int64(first + 4) == 1, confirmedSequence: row.int64(first + 5))
    }
}
