// libFuzzer entry point for the pure protocol code (decoders, version parsing, merge rules, data model).
// Built by Tools/fuzz together with Sources/KeukentafelProtocol into one binary; KT_FUZZ_TARGET picks
// what the input is fed to. A property that does not hold is a crash, which libFuzzer saves.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func keukentafelFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch FuzzTarget.current {
    case .push: FuzzTarget.push(bytes)
    case .pull: FuzzTarget.pull(bytes)
    case .version: FuzzTarget.version(bytes)
    case .merge: FuzzTarget.merge(bytes)
    case .model: FuzzTarget.model(bytes)
    }
    return 0
}

enum FuzzTarget: String, CaseIterable {
    case push, pull, version, merge, model

    static let current: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["KT_FUZZ_TARGET"] ?? "push"
        guard let target = FuzzTarget(rawValue: name) else { fatalError("KT_FUZZ_TARGET must be one of \(allCases.map(\.rawValue))") }
        return target
    }()

    /// Decoding never crashes; what decodes re-encodes to a fixed point.
    static func push(_ bytes: UnsafeRawBufferPointer) {
        guard let request = try? FeedCoding.decodePush(bytes) else { return }
        let once = FeedCoding.encode(request)
        guard let again = once.withUnsafeBytes({ try? FeedCoding.decodePush($0) }) else {
            fatalError("a decoded push does not decode after encoding: \(String(decoding: once, as: UTF8.self))")
        }
        let twice = FeedCoding.encode(again)
        precondition(once == twice, "push encoding is not stable")
    }

    static func pull(_ bytes: UnsafeRawBufferPointer) {
        guard let page = try? FeedCoding.decodePull(Data(bytes)), let once = try? FeedCoding.encode(page) else { return }
        // The look ahead of the pull feed (decision 0015) must read what the full decode reads.
        guard let peeked = FeedCoding.peekPull(Data(bytes)) else { fatalError("a pull page that decodes does not peek") }
        precondition(peeked.cursor == page.cursor && peeked.more == page.more && peeked.resync == page.resync && peeked.epoch == page.epoch,
                     "the peek of a pull page disagrees with its decode")
        guard let again = try? FeedCoding.decodePull(Data(once)), let twice = try? FeedCoding.encode(again) else {
            fatalError("a decoded pull page does not decode after encoding")
        }
        precondition(once == twice, "pull encoding is not stable")
    }

    static func version(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let version = CellVersion(text) {
            precondition(CellVersion(version.description) == version, "a version does not survive its wire form")
        }
        if let node = NodeID(text) { precondition(NodeID(node.description) == node) }
    }

    /// Three versioned values from the input: merge is commutative, associative and idempotent, and
    /// classification agrees with it.
    static func merge(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 27 else { return }
        func value(at offset: Int) -> VersionedValue? {
            var hlc: UInt64 = 0, node: UInt64 = 0
            for i in 0..<8 { hlc = hlc << 8 | UInt64(bytes[offset + i]) }
            for i in 0..<8 { node = node << 8 | UInt64(bytes[offset + 8 + i]) }
            // Small ranges make equal versions (and ties on the node) likely, where the bugs would be.
            guard let id = NodeID(rawValue: node % 4 + 1) else { return nil }
            let cell: CellValue = bytes[offset + 16] % 3 == 0 ? .null : .integer(Int64(bytes[offset + 16] % 5))
            return VersionedValue(value: cell, version: CellVersion(hlc: hlc % 16, node: id))
        }
        guard bytes.count >= 51, let a = value(at: 0), let b = value(at: 17), let c = value(at: 34) else { return }
        // One version names one write: equal versions carry equal values.
        guard a.version != b.version || a.value == b.value, b.version != c.version || b.value == c.value,
              a.version != c.version || a.value == c.value else { return }
        precondition(Merge.merge(a, b) == Merge.merge(b, a), "merge is not commutative")
        precondition(Merge.merge(Merge.merge(a, b), c) == Merge.merge(a, Merge.merge(b, c)), "merge is not associative")
        precondition(Merge.merge(a, a) == a, "merge is not idempotent")
        switch Merge.classify(current: a, incoming: b, base: nil) {
        case .applied: precondition(Merge.merge(a, b) == b)
        case .superseded: precondition(Merge.merge(a, b) == a)
        case .duplicate: precondition(a == b)
        case .conflict(let incomingWins): precondition(Merge.merge(a, b) == (incomingWins ? b : a))
        }
    }

    /// A data model from any JSON either is refused with a reason or passes its own checks.
    static func model(_ bytes: UnsafeRawBufferPointer) {
        guard let model = try? DataModel(json: Data(bytes)) else { return }
        precondition((try? model.check()) != nil)
        precondition(model.scopeDepths() != nil, "a checked model has scope cycles")
        for table in model.tables {
            for column in table.columns {
                _ = model.validate(.text("x"), for: column, in: table)
                _ = model.validate(.integer(Int64.min), for: column, in: table)
            }
        }
    }
}
