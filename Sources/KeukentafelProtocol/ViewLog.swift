import Foundation

/// The log of who viewed which record (issue 21, item 2; decision 0030): what a device's user opened,
/// kept on the device in an append-only, hash-chained log, sent with the next sync and checked here
/// by the same rules on both sides.
///
/// Each entry's hash covers its own fields and the hash of the entry before it, so an entry edited
/// after it was recorded no longer matches its hash, and one taken out leaves a gap in the numbers;
/// the server flags both instead of accepting them silently. Entries the server has received cannot
/// be changed at all (its copy is append-only). The hash is SHA-256 over `hashInput`; this module has
/// no cryptography of its own, so each side passes its `digest` (swift-crypto's SHA-256, as hex).
public enum ViewLog {
    /// One recorded view, as the device keeps it and sends it.
    public struct Entry: Codable, Sendable, Equatable {
        /// Its place in the device's log: 1, 2, 3, … with no gaps.
        public var seq: Int64
        /// When it was recorded, milliseconds since 1970 by the device's clock.
        public var at: Int64
        public var table: String
        public var row: String
        /// Why the user opened it ("huisbezoek voorbereiden", "kt sql", …).
        public var purpose: String
        /// The hash of the entry before it (`start` for the first).
        public var previous: String
        public var hash: String

        public init(seq: Int64, at: Int64, table: String, row: String, purpose: String, previous: String, hash: String) {
            self.seq = seq
            self.at = at
            self.table = table
            self.row = row
            self.purpose = purpose
            self.previous = previous
            self.hash = hash
        }

        /// A new entry, its hash made with `digest`.
        public init(seq: Int64, at: Int64, table: String, row: String, purpose: String, previous: String, digest: ([UInt8]) -> String) {
            self.init(seq: seq, at: at, table: table, row: row, purpose: purpose, previous: previous, hash: "")
            hash = digest(hashInput)
        }

        /// What its hash covers: every field, each with its length so that no two entries encode alike.
        public var hashInput: [UInt8] {
            let fields = ["v1", String(seq), String(at), table, row, purpose, previous]
            return Array(fields.map { "\($0.utf8.count):\($0)" }.joined(separator: "\n").utf8)
        }

        /// Whether its hash still matches its fields.
        public func isIntact(digest: ([UInt8]) -> String) -> Bool { hash == digest(hashInput) }
    }

    /// What the server found about one entry it received.
    public enum Finding: String, Codable, Sendable {
        /// It follows the one before, and its hash matches.
        case ok
        /// Entries before it are missing (taken out of the device's log).
        case gap
        /// Its fields do not match its hash, or the entry before it was changed.
        case altered
        /// Received before with the same hash (a retry): not stored again.
        case repeated
    }

    /// The hash before the first entry of every log: SHA-256 of "keukentafel view log v1".
    public static let start = "a6b1a176c43187b5741437f29226ef15a55e109b53949cc3f7ce6e5a257efdbe"

    /// Checks entries, in the order received, against the last entry the server holds from this device
    /// (`head`: its seq and hash; `(0, start)` before the first). Pure: `stored(seq)` answers with the
    /// hash already stored for a seq at or below the head. Returns each entry's finding and the new head.
    public static func verify(_ entries: [Entry], head: (seq: Int64, hash: String), digest: ([UInt8]) -> String,
                              stored: (Int64) throws -> String?) rethrows -> (findings: [Finding], head: (seq: Int64, hash: String)) {
        var head = head
        var findings: [Finding] = []
        for entry in entries {
            let finding: Finding
            if entry.seq <= head.seq {
                finding = try stored(entry.seq) == entry.hash && entry.isIntact(digest: digest) ? .repeated : .altered
            } else if !entry.isIntact(digest: digest) {
                finding = .altered
            } else if entry.seq != head.seq + 1 {
                finding = .gap
            } else if entry.previous != head.hash {
                finding = .altered  // the entry before it was changed after this one was recorded
            } else {
                finding = .ok
            }
            findings.append(finding)
            if entry.seq > head.seq { head = (entry.seq, entry.hash) }
        }
        return (findings, head)
    }
}

/// `POST /v1/views`: the device's recorded views not yet sent, oldest first.
public struct ViewBatch: Codable, Sendable {
    public var entries: [ViewLog.Entry]
    public init(entries: [ViewLog.Entry]) { self.entries = entries }
}

/// The answer to a `ViewBatch`.
public struct ViewReceipt: Codable, Sendable, Equatable {
    /// Every entry up to this seq is stored (the device marks them sent).
    public var through: Int64
    /// Entries stored with a finding other than `ok`.
    public var flagged: [Flag]

    public struct Flag: Codable, Sendable, Equatable {
        public var seq: Int64
        public var finding: ViewLog.Finding
        public init(seq: Int64, finding: ViewLog.Finding) {
            self.seq = seq
            self.finding = finding
        }
    }

    public init(through: Int64, flagged: [Flag]) {
        self.through = through
        self.flagged = flagged
    }
}
