import KeukentafelProtocol

/// One cell of a row as the store keeps it: its value and version, the device that wrote it (for
/// conflict records) and its sequence number in the feed.
struct StoredCell: Equatable {
    var value: VersionedValue
    var device: String?
    /// Where this cell's current version stands in the change feed: a pull from a cursor below it sends it.
    var sequence: Int64
    var version: CellVersion { value.version }
}
