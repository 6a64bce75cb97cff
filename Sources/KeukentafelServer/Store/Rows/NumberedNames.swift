/// Names the store keeps a number for, so records and history entries need not spell them: column names
/// (table `column_names`, decision 0034) and device ids (`devices.no`, decisions 0032 and 0036). A
/// number never changes meaning, and numbers are dense: each new one is the greatest so far plus one.
///
/// Each process keeps what it has read (`current`, for writers to look names up in without a lock per
/// cell). A number it does not know — given by another process after this one read the table (a second
/// `ktd` on PostgreSQL, `ktd admin` next to `ktd serve`) — makes it read the table again (`name(_:)`), on
/// a connection opened for that read alone: never one of the pool's, whose last connection the reader
/// that missed may hold. A number the table lacks too is the caller's `StoreError.corrupt`.
final class NumberedNames: Sendable {
    private let known: Locked<Numbering>
    private let reload: @Sendable () throws -> Numbering

    init(_ numbering: Numbering, reload: @escaping @Sendable () throws -> Numbering) {
        known = Locked(numbering)
        self.reload = reload
    }

    /// Numbers only as far as a store was read (migrations, checks of a store's file, tests).
    static func fixed(_ numbering: Numbering) -> NumberedNames { NumberedNames(numbering) { numbering } }

    /// The numbers known now.
    var current: Numbering { known.withLock { $0 } }

    /// The name numbered `number`, reading the table again if this process has not seen the number.
    func name(_ number: Int) throws -> String? {
        if let name = known.withLock({ $0.name(number) }) { return name }
        let fresh = try reload()
        return known.withLock { known in
            known.merge(fresh)
            return known.name(number)
        }
    }

    /// Learns one number (a pushing device's, read in its push).
    func note(_ name: String, number: Int) {
        known.withLock { $0.add(name, number: number) }
    }

    /// After a restore: the numbers of the store that was put back, which may lack some of this process's.
    func replace(with numbering: Numbering) {
        known.withLock { $0 = numbering }
    }
}

/// Names and their numbers (1, 2, 3, …) as one process knows them at one moment.
struct Numbering: Sendable, Equatable {
    /// By number − 1; nil for a number not (yet) known here.
    private var names: [String?] = []
    private var numbers: [String: Int] = [:]

    /// No numbers: every name is spelled out.
    static let none = Numbering()

    init() {}

    /// `names` numbered 1, 2, 3, … in this order.
    init(_ names: [String]) {
        for (index, name) in names.enumerated() { add(name, number: index + 1) }
    }

    init(_ pairs: [(name: String, number: Int)]) {
        for pair in pairs { add(pair.name, number: pair.number) }
    }

    /// The greatest number known.
    var greatest: Int { names.count }

    func number(_ name: String) -> Int? { numbers[name] }

    func name(_ number: Int) -> String? { number >= 1 && number <= names.count ? names[number - 1] : nil }

    mutating func add(_ name: String, number: Int) {
        precondition(number >= 1, "numbers start at 1")
        if number > names.count { names.append(contentsOf: repeatElement(nil, count: number - names.count)) }
        names[number - 1] = name
        numbers[name] = number
    }

    mutating func merge(_ other: Numbering) {
        for (name, number) in other.numbers { add(name, number: number) }
    }
}

/// The devices' numbers, by which records name the devices that wrote their cells (decision 0036).
/// The push notes its own device's number (`HistoryWriter` reads it), so a device added since this
/// process read the table is numbered from its first push on. Writers that are no device (`office`,
/// `demo`) have none and are spelled out.
enum DeviceNumbers {
    /// The numbered devices of the store.
    static func read(_ connection: any StoreConnection) throws -> Numbering {
        var numbering = Numbering()
        for row in try connection.query("SELECT no, id FROM devices WHERE no IS NOT NULL") {
            guard let number = row[0].int64, number >= 1, let id = row[1].string else {
                throw StoreError.corrupt("table devices has a device number below 1 or without an id (at \(row[0]))")
            }
            numbering.add(id, number: Int(number))
        }
        return numbering
    }
}
