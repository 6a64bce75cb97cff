import Foundation
import KeukentafelProtocol

/// A whole request refused by the store, with a stable code (the HTTP layer answers 409).
public struct StoreRefusal: Error, CustomStringConvertible, Sendable {
    /// The stable code the HTTP layer answers with.
    public var code: ErrorCode
    /// Why, for the person who reads it.
    public var message: String

    init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message with its code.
    public var description: String { "\(message) [\(code.rawValue)]" }
}

/// The store found itself damaged, or a row it needs missing.
public enum StoreError: Error, CustomStringConvertible {
    case corrupt(String)
    case notFound(String)
    /// A newer release moved the store to a layout this one does not know (`StoreSchema.layout`).
    case newerLayout(store: Int64, known: Int64)

    /// What went wrong, in words.
    public var description: String {
        switch self {
        case .corrupt(let why): return "store is damaged: \(why)"
        case .notFound(let what): return "\(what) not found"
        case .newerLayout(let store, let known):
            return "a newer ktd moved this store to layout \(store); this ktd knows layouts up to \(known) and leaves it alone. "
                + "Run the newer ktd, or to go back to this one put back the backup taken before the upgrade (ktd admin restore)"
        }
    }
}

/// Formats milliseconds since 1970 as ISO-8601 UTC with milliseconds (2026-12-01T23:41:07.123Z): the
/// store's timestamps, and ktd's log lines.
public func iso8601(_ milliseconds: Int64) -> String {
    var seconds = time_t(milliseconds / 1000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ value: Int32, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds % 1000), 3))Z"
}

extension CellVersion {
    /// Reads a version stored as two INTEGER columns.
    init?(hlc: CellValue, node: CellValue) {
        guard case .integer(let h) = hlc, case .integer(let n) = node, let id = NodeID(rawValue: UInt64(n)) else { return nil }
        self.init(hlc: UInt64(h), node: id)
    }

    var hlcValue: CellValue { .integer(Int64(hlc)) }
    var nodeValue: CellValue { .integer(Int64(node.rawValue)) }
}
