/// Calendar dates as day numbers (days since 1970-01-01), for date arithmetic without time zones:
/// deadlines are whole days (Howard Hinnant's civil-date algorithms).
public enum CalendarDay {
    /// The day number of a valid `YYYY-MM-DD`, else `nil`.
    public static func number(_ text: String) -> Int? {
        guard isValidDate(text) else { return nil }
        let parts = text.split(separator: "-").compactMap { Int($0) }
        return number(year: parts[0], month: parts[1], day: parts[2])
    }

    public static func number(year y: Int, month m: Int, day d: Int) -> Int {
        let year = m <= 2 ? y - 1 : y
        let era = (year >= 0 ? year : year - 399) / 400
        let yoe = year - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        return era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    }

    /// `YYYY-MM-DD` of a day number.
    public static func string(_ days: Int) -> String {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func pad(_ v: Int, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }
}
