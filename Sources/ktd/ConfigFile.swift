import ArgumentParser
import Foundation
import KeukentafelServer

/// ktd's configuration file: `key = value` lines, `#` starts a comment. See Tools/ktd.conf.example.
/// Precedence: command-line flag, then environment variable, then this file, then the default.
struct ConfigFile {
    static let keys: [String: String] = [
        "data": "KT_DATA", "listen": "KT_LISTEN", "schema": "KT_SCHEMA", "max-clock-skew": "KT_MAX_CLOCK_SKEW",
        "max-request-bytes": "KT_MAX_REQUEST_BYTES", "max-wait": "KT_MAX_WAIT",
        "tls-certificate": "KT_TLS_CERTIFICATE", "tls-key": "KT_TLS_KEY", "postgres": "KT_POSTGRES_URL",
        "metrics-listen": "KT_METRICS_LISTEN", "history-retention": "KT_HISTORY_RETENTION",
    ]

    var values: [String: String] = [:]

    /// Reads and checks the file; every mistake is reported with its line number.
    static func load(_ path: String?) throws -> ConfigFile {
        guard let path else { return ConfigFile() }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read the configuration file '\(path)'")
        }
        var file = ConfigFile()
        var problems: [String] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[1].isEmpty else {
                problems.append("line \(index + 1): expected 'key = value', got '\(trimmed.prefix(60))'")
                continue
            }
            guard keys[parts[0]] != nil else {
                problems.append("line \(index + 1): unknown key '\(parts[0])' (known: \(keys.keys.sorted().joined(separator: ", ")))")
                continue
            }
            file.values[parts[0]] = parts[1]
        }
        for key in ["max-clock-skew", "max-request-bytes", "max-wait"] {
            if let value = file.values[key], Int(value).map({ $0 > 0 }) != true {
                problems.append("\(key) must be a positive whole number, got '\(value)'")
            }
        }
        if let period = file.values["history-retention"], HistoryRetention.days(period).map({ $0 >= HistoryRetention.minimumDays }) != true {
            problems.append("history-retention: '\(period)' is not a period of at least \(HistoryRetention.minimumDays) days: "
                            + "use a number with d, w, m or y, such as 90d or 2y")
        }
        if !problems.isEmpty { throw ValidationError("configuration file '\(path)':\n  " + problems.joined(separator: "\n  ")) }
        return file
    }

    /// The value of a setting: the flag, else the environment, else the file, else nil.
    func value(_ key: String, flag: String?) -> String? {
        flag ?? ConfigFile.keys[key].flatMap { ProcessInfo.processInfo.environment[$0] } ?? values[key]
    }

    func integer(_ key: String, flag: Int?, default fallback: Int) throws -> Int {
        guard let text = value(key, flag: flag.map(String.init)) else { return fallback }
        guard let number = Int(text), number > 0 else { throw ValidationError("\(key) must be a positive whole number, got '\(text)'") }
        return number
    }
}
