/// Who made a push and when, as its history entries keep it (decision 0035): a registered device by
/// its number (`devices.no`), any other writer (`office`, `demo`: `ktd admin`) by name; the time in
/// milliseconds.
struct HistoryWriter: Equatable {
    var number: Int64?
    var name: String?
    var milliseconds: Int64

    /// The writer `device` (a device id, or the name of another writer) at `milliseconds`.
    init(device: String, at milliseconds: Int64, _ connection: any StoreConnection) throws {
        let stmt = try connection.literalStatement("SELECT no FROM devices WHERE id = ?")
        defer { stmt.reset() }
        try stmt.bind(device, at: 1)
        number = try stmt.step() && !stmt.isNull(0) ? stmt.int64(0) : nil
        name = number == nil ? device : nil
        self.milliseconds = milliseconds
    }
}
