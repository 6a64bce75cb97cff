import Foundation
import KeukentafelProtocol

/// The app's SQL from Swift concurrency. SQLite calls block, so they run on a queue of the replica's
/// own rather than on the cooperative pool (whose few threads must never wait) or on a new thread per
/// call: Dispatch reuses its threads. Queries still run side by side on the read pool; writes one at
/// a time on the writer.
extension Replica {
    /// `execute(_:_:)` without blocking the caller's thread.
    public func execute(_ sql: String, _ arguments: [CellValue] = []) async throws {
        try await offThread { try $0.execute(sql, arguments) }
    }

    /// `query(_:_:)` without blocking the caller's thread.
    public func query(_ sql: String, _ arguments: [CellValue] = []) async throws -> (columns: [String], rows: [[CellValue]]) {
        try await offThread { try $0.query(sql, arguments) }
    }

    /// Runs several writes atomically, all or none, without blocking the caller's thread. `body` runs
    /// on the writer with the replica's blocking API (`execute`, `query`, `insert`, …).
    public func write<T: Sendable>(_ body: @escaping @Sendable (Replica) throws -> T) async throws -> T {
        try await offThread { replica in try replica.transaction { try body(replica) } }
    }

    /// `fetch(_:_:_:)` without blocking the caller's thread.
    public func fetch<T: Decodable & Sendable>(_ type: T.Type, _ sql: String, _ arguments: [CellValue] = []) async throws -> [T] {
        try await offThread { try $0.fetch(type, sql, arguments) }
    }

    private func offThread<T: Sendable>(_ work: @escaping @Sendable (Replica) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Replica.workQueue.async { continuation.resume(with: Result { try work(self) }) }
        }
    }

    /// Shared by all replicas of the process; concurrent, so reads do not queue behind a write.
    private static let workQueue = DispatchQueue(label: "keukentafel.replica", qos: .userInitiated, attributes: .concurrent)
}
