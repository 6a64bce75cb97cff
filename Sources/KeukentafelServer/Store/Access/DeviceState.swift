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

    /// The device's state inside the caller's transaction; nil for a device the store does not know.
    static func read(_ device: String, _ connection: any StoreConnection) throws -> DeviceState? {
        guard let row = try connection.query("SELECT node, node_high_water, informed_seq, name FROM devices WHERE id = ?",
                                             [.text(device)]).first else { return nil }
        return DeviceState(id: device, name: row[3].string ?? device, node: row[0].int64.flatMap { NodeID(rawValue: UInt64($0)) },
                           highWater: UInt64(max(0, row[1].int64 ?? 0)), informedSequence: row[2].int64 ?? 0)
    }

    /// Binds the device to `node` on its first push, or refuses a node that is not its own.
    mutating func bind(to node: NodeID, _ connection: any StoreConnection) throws {
        if let bound = self.node {
            guard bound == node else {
                throw StoreRefusal(.nodeMismatch, "this device ('\(name)') belongs to replica \(bound); this replica is \(node). "
                    + "A token serves one replica: ask the office for a token of its own (`ktd admin device add`), "
                    + "or, if the device's first replica is gone for good, to release it (`ktd admin device release`).")
            }
            return
        }
        if let owner = try connection.scalar("SELECT name FROM devices WHERE node = ?", [.integer(Int64(node.rawValue))])?.string {
            throw StoreRefusal(.nodeMismatch, "replica \(node) belongs to another device ('\(owner)'); a device cannot write as another device's replica")
        }
        try connection.run("UPDATE devices SET node = ? WHERE id = ? AND node IS NULL", [.integer(Int64(node.rawValue)), .text(id)])
        self.node = node
    }

    /// Records the newest version accepted from the device's node.
    mutating func raiseHighWater(to hlc: UInt64, _ connection: any StoreConnection) throws {
        guard hlc > highWater else { return }
        try connection.run("UPDATE devices SET node_high_water = ? WHERE id = ?", [.integer(Int64(hlc)), .text(id)])
        highWater = hlc
    }
}

/// A whole request refused by the store, with a stable code (the HTTP layer answers 409).
public struct StoreRefusal: Error, CustomStringConvertible, Sendable {
    public var code: ErrorCode
    public var message: String

    init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(message) [\(code.rawValue)]" }
}

extension ServerStore {
    /// State every store needs whatever release made it: the unique index on device nodes, the
    /// devices' nodes as their history shows them (stores from before decision 0017), and the key
    /// that signs feed cursors. Idempotent; inside the caller's write transaction.
    static func migrateShared(_ connection: any StoreConnection) throws {
        if try connection.scalar("SELECT value FROM meta WHERE key = 'cursor_key'") == nil {
            try connection.setMeta("cursor_key", .text(CursorProof.newKey()))
        }
        guard try connection.scalar("SELECT value FROM meta WHERE key = 'nodes_bound'") == nil else { return }
        // Each node belongs to the device that used it first; each device keeps the newest node it owns.
        var firstUse: [Int64: (device: String, first: Int64)] = [:]
        var newest: [String: (node: Int64, last: Int64)] = [:]
        let known = Set(try connection.query("SELECT id FROM devices").compactMap { $0[0].string })
        let uses = try connection.query("SELECT node, device, min(hlc), max(hlc) FROM changes WHERE device IS NOT NULL GROUP BY node, device")
        for use in uses {
            guard let node = use[0].int64, let device = use[1].string, known.contains(device), let first = use[2].int64 else { continue }
            if firstUse[node].map({ first < $0.first }) ?? true { firstUse[node] = (device, first) }
        }
        for use in uses {
            guard let node = use[0].int64, let device = use[1].string, firstUse[node]?.device == device, let last = use[3].int64 else { continue }
            if newest[device].map({ last > $0.last }) ?? true { newest[device] = (node, last) }
        }
        for (device, binding) in newest.sorted(by: { $0.key < $1.key }) {
            try connection.run("UPDATE devices SET node = ?, node_high_water = ? WHERE id = ? AND node IS NULL",
                               [.integer(binding.node), .integer(binding.last), .text(device)])
        }
        // Scope removals from before removed_seq: as if made at the current head.
        if let head = try connection.scalar("SELECT value FROM meta WHERE key = 'seq'")?.int64 {
            try connection.run("UPDATE user_scope_removals SET removed_seq = ? WHERE removed_seq = 0", [.integer(head)])
        }
        try connection.execute("CREATE UNIQUE INDEX IF NOT EXISTS devices_by_node ON devices(node) WHERE node IS NOT NULL")
        try connection.setMeta("nodes_bound", .integer(1))
    }
}

/// Signs feed cursors, so that a cursor beyond the store's head proves the store went back (a file
/// put back by hand) only if the store itself once handed it out (decision 0017). A device cannot
/// make every other device download everything again by sending a cursor it was never given.
enum CursorProof {
    static func newKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { hexString($0) }
    }

    /// The proof for `cursor` in `epoch`: 128 bits of HMAC-SHA256, in hex.
    static func proof(cursor: Int64, epoch: String?, key: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(epoch ?? "")/\(cursor)".utf8), using: SymmetricKey(data: Array(key.utf8)))
        return hexString(mac.prefix(16))
    }

    static func isValid(_ proof: String, cursor: Int64, epoch: String?, key: String) -> Bool {
        DeviceToken.constantTimeEqual(proof, self.proof(cursor: cursor, epoch: epoch, key: key))
    }
}
