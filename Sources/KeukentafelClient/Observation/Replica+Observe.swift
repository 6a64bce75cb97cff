import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Observed queries: a screen shows "my cases" and stays right while the sync applies pages, rows
/// leave the device, the consultant types, or `kt daemon` in another process writes the file.
extension Replica {
    /// The query's result now, then again each time it changes: after a local write, a pulled page,
    /// an eviction, a purge or an erasure that touches a table the query reads, or a write by another
    /// process. Results equal to the one before are not delivered. Iterate it in a task; stopping the
    /// iteration stops the observation.
    ///
    /// ```swift
    /// for try await result in try replica.observe("SELECT id, status FROM cases WHERE team = ?", [.text(team)]) {
    ///     screen.show(result.rows)
    /// }
    /// ```
    public func observe(_ sql: String, _ arguments: [CellValue] = []) throws -> AsyncThrowingStream<QueryResult, any Error> {
        let (stream, continuation) = AsyncThrowingStream<QueryResult, any Error>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let observation = try observe(sql, arguments) { result in
            switch result {
            case .success(let rows): continuation.yield(rows)
            case .failure(let error): continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in observation.cancel() }
        return stream
    }

    /// The callback form of `observe(_:_:)`: `onChange` is called on a queue of the observation's own
    /// with the first result and every different one after it. Keep the returned observation; it
    /// stops when cancelled or released.
    public func observe(_ sql: String, _ arguments: [CellValue] = [],
                        onChange: @escaping @Sendable (Result<QueryResult, any Error>) -> Void) throws -> ReplicaObservation {
        let region = try readers.read { reader in
            try refuseSeveralStatements(sql, reader, what: "an observation")
            return try translatingDenial(reader) { try reader.tablesRead(by: sql) }
        }
        let observer = QueryObserver(region: region, evaluate: { [weak self] in
            guard let self else { throw ReplicaError.notInitialized("the replica was closed") }
            let result = try self.query(sql, arguments)
            return QueryResult(columns: result.columns, rows: result.rows)
        }, deliver: onChange)
        let id = observers.add(observer)
        startWatchingOtherProcesses()
        observer.start()
        return ReplicaObservation(observer: observer) { [weak self, observer] in
            observer.finish()
            self?.observers.remove(id)
        }
    }

    /// The tables changed by each commit on this replica (local writes, pulled pages, evictions,
    /// purges), for apps that keep their own caches. The sync's own tables (`_kt_*`) are included.
    public func tableChanges() -> AsyncStream<Set<String>> {
        let (stream, continuation) = AsyncStream<Set<String>>.makeStream()
        let id = observers.addChangeWatcher { tables in if let tables { continuation.yield(tables) } }
        continuation.onTermination = { [weak self] _ in self?.observers.remove(id) }
        return stream
    }

    /// Looks for other processes' writes while anyone watches (`ObservationCenter.startPolling`).
    func startWatchingOtherProcesses() {
        observers.startPolling { [weak self] in
            guard let self else { return nil }
            // Only when the writer is free: a busy writer is this process writing, which tells by itself.
            guard lock.try() else { return nil }
            defer { lock.unlock() }
            return try? connection.dataVersion()
        }
    }

    /// Called when a thread leaves the writer: the tables its commits changed go to the observers.
    func leaveWriter() {
        let changed = connection.takeCommittedChanges()
        if !changed.isEmpty { observers.tablesChanged(changed) }
    }
}
