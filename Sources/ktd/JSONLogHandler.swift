import Foundation
import KeukentafelServer
import Logging

/// One JSON object per line on standard error, for journald and log collectors (used when standard
/// error is not a terminal; on a terminal ktd logs plain text).
struct JSONLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let label: String

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        // Most lines carry no handler metadata: the event's own is used as it is, without a merged copy.
        var fields: [(key: String, value: String)] = []
        fields.reserveCapacity(6 + (event.metadata?.count ?? 0) + metadata.count)
        fields.append(("level", event.level.rawValue))
        fields.append(("label", label))
        fields.append(("message", event.message.description))
        if metadata.isEmpty {
            for (key, value) in event.metadata ?? [:] { fields.append((key, value.description)) }
        } else {
            for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { fields.append((key, value.description)) }
        }
        if let error = event.error { fields.append(("error", "\(error)")) }
        let line = Self.line(fields, milliseconds: Int64(Date().timeIntervalSince1970 * 1000))
        line.withUnsafeBytes { bytes in
            var rest = bytes
            while !rest.isEmpty {
                let written = write(STDERR_FILENO, rest.baseAddress, rest.count)
                if written < 0, errno == EINTR { continue }
                guard written > 0 else { return }  // nowhere to log to: the request goes on regardless
                rest = UnsafeRawBufferPointer(rebasing: rest[written...])
            }
        }
    }

    /// The time and the fields as one line of JSON, keys sorted (a key given twice: the last one).
    /// Written by hand into bytes: ktd logs every request, and `JSONEncoder` with a new
    /// `ISO8601DateFormatter` per line cost a third of the server's CPU when a push woke thousands of
    /// long-polls (issue 23); building it as a dictionary of strings still cost a tenth (session 20).
    static func line(_ fields: [(key: String, value: String)], milliseconds: Int64) -> [UInt8] {
        let fields = [(key: "time", value: "")] + fields  // position 0: the time, written as digits
        // Stable, so of equal keys the later stays last; then every key but its last occurrence is skipped.
        let order = fields.indices.sorted { fields[$0].key != fields[$1].key ? fields[$0].key < fields[$1].key : $0 < $1 }
        var out: [UInt8] = []
        out.reserveCapacity(64 + fields.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 6 })
        out.append(UInt8(ascii: "{"))
        var first = true
        for (position, index) in order.enumerated() {
            if position + 1 < order.count, fields[order[position + 1]].key == fields[index].key { continue }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendString(fields[index].key, to: &out)
            out.append(UInt8(ascii: ":"))
            if index == 0 {
                appendTime(milliseconds, to: &out)
            } else {
                appendString(fields[index].value, to: &out)
            }
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }

    /// `"2026-12-02T15:46:39.123Z"`, UTC.
    static func appendTime(_ milliseconds: Int64, to out: inout [UInt8]) {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ width: Int) {
            var divisor: Int32 = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: (rest / divisor) % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        out.append(UInt8(ascii: "\""))
        digits(parts.tm_year + 1900, 4); out.append(UInt8(ascii: "-"))
        digits(parts.tm_mon + 1, 2); out.append(UInt8(ascii: "-"))
        digits(parts.tm_mday, 2); out.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2); out.append(UInt8(ascii: ":"))
        digits(parts.tm_min, 2); out.append(UInt8(ascii: ":"))
        digits(parts.tm_sec, 2); out.append(UInt8(ascii: "."))
        digits(Int32(milliseconds % 1000), 3)
        out.append(contentsOf: "Z\"".utf8)
    }

    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)  // UTF-8 passes through: JSON is UTF-8
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

enum LoggingSetup {
    /// Plain text on a terminal, JSON lines otherwise. Level from LOG_LEVEL (default info).
    static func bootstrap() {
        let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let json = isatty(STDERR_FILENO) != 1
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
