import KeukentafelProtocol

/// The rows of a query, as an observation delivers them.
public struct QueryResult: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[CellValue]]

    public init(columns: [String], rows: [[CellValue]]) {
        self.columns = columns
        self.rows = rows
    }
}

/// A running observation; it stops when cancelled or released (the stream form stops when its
/// consumer stops iterating).
public final class ReplicaObservation: Sendable {
    private let cancelBody: @Sendable () -> Void
    /// The observed query, for tests (how many times it ran).
    let observer: QueryObserver

    init(observer: QueryObserver, cancel: @escaping @Sendable () -> Void) {
        self.observer = observer
        cancelBody = cancel
    }
    public func cancel() { cancelBody() }
    deinit { cancelBody() }
}
