/// The filters of `kt conflicts list` and `ktd admin conflicts list`: one rule for both, so the field
/// and the office see the same list for the same question.
public struct ConflictFilter: Sendable, Equatable {
    public var table: String?
    /// A row id, or its first characters.
    public var row: String?
    /// Recorded on or after this date (`YYYY-MM-DD`) or time (ISO-8601).
    public var since: String?
    /// A device that took part (id or name).
    public var device: String?
    /// A user whose device took part.
    public var user: String?
    public var unresolvedOnly = false
    public var reviewOnly = false

    public init(table: String? = nil, row: String? = nil, since: String? = nil, device: String? = nil, user: String? = nil,
                unresolvedOnly: Bool = false, reviewOnly: Bool = false) {
        self.table = table
        self.row = row
        self.since = since
        self.device = device
        self.user = user
        self.unresolvedOnly = unresolvedOnly
        self.reviewOnly = reviewOnly
    }

    public func matches(_ c: ConflictRecord) -> Bool {
        if let table, c.table != table { return false }
        if let row, !c.row.hasPrefix(row) { return false }
        if let since, c.recordedAt < since { return false }
        if let device, ![c.winnerDevice, c.loserDevice, c.winnerDeviceName, c.loserDeviceName].contains(device) { return false }
        if let user, c.winnerUser != user, c.loserUser != user { return false }
        if unresolvedOnly, c.resolvedAt != nil || c.resolution != nil { return false }
        if reviewOnly, !c.review { return false }
        return true
    }
}
