import Foundation
import KeukentafelProtocol
import KeukentafelSQLite

/// Who watches a replica, and telling them when the tables they read change.
///
/// The writer connection reports the tables each committed transaction changed (SQLite's update and
/// commit hooks, `trackChanges`); the replica hands them over when it leaves the writer
/// (`Replica.leaveWriter`), after the commit, so a query run then sees the new state. Another process
/// writing the file (`kt daemon`, `kt sql`) is noticed by `PRAGMA data_version` on the writer, polled
/// while someone observes; then which tables changed is unknown and every query runs again.
/// A query runs again only if its tables changed, on a queue of its own, and its result is delivered
/// only if it differs from the last one: changes that come quickly one after another are coalesced.
final class ObservationCenter: @unchecked Sendable {
    private let lock = NSLock()
    private var queries: [Int: QueryObserver] = [:]
    /// Told of every commit: the tables it changed, or nil when another process wrote.
    private var tableWatchers: [Int: @Sendable (Set<String>?) -> Void] = [:]
    private var nextID = 0
    private var poller: (any DispatchSourceTimer)?
    private let pollQueue = DispatchQueue(label: "keukentafel.observation.poll")
    /// How often another process's writes are looked for.
    let pollInterval: DispatchTimeInterval

    init(pollInterval: DispatchTimeInterval = .milliseconds(250)) {
        self.pollInterval = pollInterval
    }

    var isEmpty: Bool { lock.withLock { queries.isEmpty && tableWatchers.isEmpty } }

    func add(_ observer: QueryObserver) -> Int {
        lock.withLock {
            nextID += 1
            queries[nextID] = observer
            return nextID
        }
    }

    func addChangeWatcher(_ watcher: @escaping @Sendable (Set<String>?) -> Void) -> Int {
        lock.withLock {
            nextID += 1
            tableWatchers[nextID] = watcher
            return nextID
        }
    }

    func remove(_ id: Int) {
        let stopPolling = lock.withLock { () -> Bool in
            queries[id] = nil
            tableWatchers[id] = nil
            return queries.isEmpty && tableWatchers.isEmpty
        }
        if stopPolling { stopPoller() }
    }

    /// Tables changed by a commit on this replica's writer; `nil`: unknown (another process wrote).
    func tablesChanged(_ tables: Set<String>?) {
        let (observers, watchers) = lock.withLock { (Array(queries.values), Array(tableWatchers.values)) }
        for observer in observers where tables.map({ !observer.region.isDisjoint(with: $0) }) ?? true {
            observer.changed()
        }
        for watcher in watchers { watcher(tables) }
    }

    /// Polls `dataVersion` (nil while the writer is busy) and reports a change as "tables unknown".
    func startPolling(dataVersion: @escaping @Sendable () -> Int64?) {
        lock.lock()
        defer { lock.unlock() }
        guard poller == nil else { return }
        let timer = DispatchSource.makeTimerSource(queue: pollQueue)
        let last = LastVersion(dataVersion())
        timer.schedule(deadline: .now() + pollInterval, repeating: pollInterval)
        timer.setEventHandler { [weak self] in
            guard let version = dataVersion(), version != last.value else { return }
            let known = last.value != nil
            last.value = version
            if known { self?.tablesChanged(nil) }
        }
        poller = timer
        timer.resume()
    }

    private func stopPoller() {
        lock.withLock {
            poller?.cancel()
            poller = nil
        }
    }

    deinit { poller?.cancel() }

    private final class LastVersion: @unchecked Sendable {
        var value: Int64?
        init(_ value: Int64?) { self.value = value }
    }
}

/// One observed query: where it reads, what it last delivered, and a serial queue that runs it again.
final class QueryObserver: @unchecked Sendable {
    let region: Set<String>
    private let evaluate: @Sendable () throws -> QueryResult
    private let deliver: @Sendable (Result<QueryResult, any Error>) -> Void
    private let queue = DispatchQueue(label: "keukentafel.observation.query")
    private let lock = NSLock()
    private var scheduled = false
    private var last: QueryResult?
    private var finished = false
    /// How many times the query ran (for tests: a change elsewhere must not run it).
    private(set) var evaluations = 0

    init(region: Set<String>, evaluate: @escaping @Sendable () throws -> QueryResult,
         deliver: @escaping @Sendable (Result<QueryResult, any Error>) -> Void) {
        self.region = region
        self.evaluate = evaluate
        self.deliver = deliver
    }

    var evaluationCount: Int { lock.withLock { evaluations } }

    /// Runs the query once now and delivers the result: the first value of every observation.
    func start() { changed() }

    /// Runs the query again soon; changes that arrive before it ran are coalesced into one run.
    func changed() {
        let schedule = lock.withLock { () -> Bool in
            guard !scheduled, !finished else { return false }
            scheduled = true
            return true
        }
        guard schedule else { return }
        queue.async { [self] in
            lock.withLock { scheduled = false }
            let result = Result { try evaluate() }
            let delivery = lock.withLock { () -> Result<QueryResult, any Error>? in
                guard !finished else { return nil }
                evaluations += 1
                switch result {
                case .success(let rows):
                    if rows == last { return nil }
                    last = rows
                    return result
                case .failure:
                    finished = true  // a query that fails keeps failing; the observation ends with the error
                    return result
                }
            }
            if let delivery { deliver(delivery) }
        }
    }

    func finish() { lock.withLock { finished = true } }

    /// Waits until every run scheduled so far has finished (for tests).
    func drain() { queue.sync {} }
}
