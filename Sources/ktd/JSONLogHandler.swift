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
        var object: [String: String] = [
            "time": iso8601(Int64(Date().timeIntervalSince1970 * 1000)), "level": event.level.rawValue, "label": label, "message": event.message.description,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { object[key] = value.description }
        if let error = event.error { object["error"] = "\(error)" }
        var line = Self.line(object)
        line.withUTF8 { bytes in
            var rest = UnsafeRawBufferPointer(bytes)
            while !rest.isEmpty {
                let written = write(STDERR_FILENO, rest.baseAddress, rest.count)
                if written < 0, errno == EINTR { continue }
                guard written > 0 else { return }  // nowhere to log to: the request goes on regardless
                rest = UnsafeRawBufferPointer(rebasing: rest[written...])
            }
        }
    }

    /// The object as one line of JSON, keys sorted. Written by hand: ktd logs every request, and
    /// `JSONEncoder` with a new `ISO8601DateFormatter` per line cost a third of the server's CPU when a
    /// push woke thousands of long-polls (issue 23).
    static func line(_ object: [String: String]) -> String {
        var out = "{"
        for (index, key) in object.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            appendString(key, to: &out)
            out += ":"
            appendString(object[key] ?? "", to: &out)
        }
        return out + "}\n"
    }

    private static func appendString(_ text: String, to out: inout String) {
        out += "\""
        // Most values (routes, ids, numbers) need no escaping: appended whole.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            out += text
            out += "\""
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
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
