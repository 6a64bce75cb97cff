/// The devices' numbers (`devices.no`, decision 0032), by which records name the device that wrote
/// each cell (decision 0036) instead of its 36-character id. A device keeps its number for good:
/// devices are never deleted, and a number is the greatest so far plus one.
///
/// The push notes its own device's number (`HistoryWriter` reads it); a number this process does not
/// know — a device added by another process, or by `ktd admin` — makes it read the table again, on a
/// connection opened for that read alone (as `ColumnNames`). A writer without a number (`office`,
/// `demo`) is spelled out in the record.
final class DeviceNumbers: Sendable {
    private let known: Locked<DeviceDictionary>
    private let reload: @Sendable () throws -> DeviceDictionary

    init(_ dictionary: DeviceDictionary, reload: @escaping @Sendable () throws -> DeviceDictionary) {
        known = Locked(dictionary)
        self.reload = reload
    }

    /// Numbers only as far as a store was read (for migrations and checks of a store's file).
    static func fixed(_ dictionary: DeviceDictionary) -> DeviceNumbers { DeviceNumbers(dictionary) { dictionary } }

    /// The numbers known now, for a writer to look ids up in without a lock per record.
    var current: DeviceDictionary { known.withLock { $0 } }

    /// The id of device `number`, reading the table again if this process has not seen the number.
    func id(_ number: Int64) throws -> String? {
        if let id = known.withLock({ $0.id(number) }) { return id }
        let fresh = try reload()
        return known.withLock { known in
            known.merge(fresh)
            return known.id(number)
        }
    }

    /// Learns a device's number (the pushing device's, read in its push).
    func note(id: String, number: Int64) {
        known.withLock { $0.add(id, number: number) }
    }

    /// After a restore: the numbers of the store that was put back.
    func replace(with dictionary: DeviceDictionary) {
        known.withLock { $0 = dictionary }
    }

    /// The numbered devices of the store.
    static func read(_ connection: any StoreConnection) throws -> DeviceDictionary {
        var dictionary = DeviceDictionary()
        for row in try connection.query("SELECT no, id FROM devices WHERE no IS NOT NULL") {
            guard let number = row[0].int64, let id = row[1].string else { continue }
            dictionary.add(id, number: number)
        }
        return dictionary
    }
}

/// Device ids and their numbers as one process knows them at one moment.
struct DeviceDictionary: Sendable {
    private var ids: [Int64: String] = [:]
    private var numbers: [String: Int64] = [:]

    /// No numbers: every writer is spelled out.
    static let none = DeviceDictionary()

    init() {}

    init(_ pairs: [(id: String, number: Int64)]) {
        for pair in pairs { add(pair.id, number: pair.number) }
    }

    func number(_ id: String) -> Int64? { numbers[id] }

    func id(_ number: Int64) -> String? { ids[number] }

    mutating func add(_ id: String, number: Int64) {
        ids[number] = id
        numbers[id] = number
    }

    fileprivate mutating func merge(_ other: DeviceDictionary) {
        for (number, id) in other.ids { add(id, number: number) }
    }
}
