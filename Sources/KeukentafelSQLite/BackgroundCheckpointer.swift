import Foundation
import CSQLite

/// Copies a WAL database's log back into the database file on a thread of its own, so the writer
/// never waits for it.
///
/// By default SQLite checkpoints inside the commit that pushes the log past 1,000 pages: that commit
/// then also writes those pages into the database and syncs both files. On the server's push path
/// that was about 20 % of ingest time (decision 0016). With a checkpointer, the writer's commits only
/// append to the log, and when the log has grown past `pages`, this thread runs a passive checkpoint
/// on a connection of its own. Passive checkpoints never wait for readers or the writer, and the
/// writer starts the log over once everything in it has been copied, so the log stays about as
/// small as before.
public final class BackgroundCheckpointer: Sendable {
    /// What the writer's hook, the thread and the owner share. The thread holds this, not the
    /// checkpointer, so dropping the checkpointer stops the thread.
    private final class State: @unchecked Sendable {
        let condition = NSCondition()
        var requested = false
        var stopped = false
        var completed = 0
        /// Held during every checkpoint; `paused` takes it so another checkpoint can run alone.
        let checkpointLock = NSLock()
        /// The thread's own connection, used only by it.
        let connection: SQLiteConnection

        init(connection: SQLiteConnection) { self.connection = connection }
    }

    private let state: State

    /// Takes over checkpoints of `writer`'s database (a WAL database): one starts once the log holds
    /// `pages` pages.
    public init(writer: SQLiteConnection, pages: Int32 = 1_000) throws {
        let connection = try SQLiteConnection(path: writer.path, cipher: writer.cipher)
        // A connection learns that the database is in WAL mode only when it first reads it; until
        // then a checkpoint on it does nothing.
        guard case .text("wal")? = try connection.scalar("PRAGMA journal_mode") else {
            throw SQLiteError(code: SQLITE_MISUSE, message: "'\(writer.path)' is not in WAL mode; a background checkpoint needs it", sql: nil)
        }
        let state = State(connection: connection)
        self.state = state
        writer.onWALCommit = { framesInLog in
            guard framesInLog >= pages else { return }
            state.condition.withLock {
                state.requested = true
                state.condition.broadcast()
            }
        }
        let thread = Thread { Self.run(state) }
        thread.name = "sqlite-checkpoint"
        thread.start()
    }

    deinit { stop() }

    /// Ends the thread after any checkpoint under way. The writer's log is then checkpointed again
    /// only when its last connection closes, unless its owner sets `onWALCommit` to nil.
    public func stop() {
        state.condition.withLock {
            state.stopped = true
            state.condition.broadcast()
        }
    }

    /// Runs `body` while no background checkpoint runs (for a checkpoint that must truncate the log).
    public func paused<T>(_ body: () throws -> T) rethrows -> T {
        try state.checkpointLock.withLock(body)
    }

    /// How many checkpoints the thread has run.
    public var completedCheckpoints: Int { state.condition.withLock { state.completed } }

    /// Waits until the thread has run at least `count` checkpoints; false if `timeout` passed first.
    public func waitForCheckpoints(_ count: Int, timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        return state.condition.withLock {
            while state.completed < count {
                if !state.condition.wait(until: deadline) { return state.completed >= count }
            }
            return true
        }
    }

    private static func run(_ state: State) {
        while true {
            let go: Bool = state.condition.withLock {
                while !state.requested && !state.stopped { state.condition.wait() }
                state.requested = false
                return !state.stopped
            }
            guard go else { return }
            state.checkpointLock.withLock {
                // The result is ignored on purpose: a checkpoint that could not copy everything (a
                // reader still needs old pages) is simply done again after the next commits.
                _ = sqlite3_wal_checkpoint_v2(state.connection.handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            }
            state.condition.withLock {
                state.completed += 1
                state.condition.broadcast()
            }
        }
    }
}

extension SQLiteConnection {
    /// Called after every commit with the number of frames in the write-ahead log. Setting it turns
    /// off SQLite's own checkpoint in the commit (both use the connection's WAL hook).
    public var onWALCommit: ((Int32) -> Void)? {
        get { walCommitHandler }
        set {
            walCommitHandler = newValue
            guard newValue != nil else {
                sqlite3_wal_autocheckpoint(handle, 1_000)  // SQLite's default again
                return
            }
            // The connection outlives its handle's hook: its deinit closes the handle first.
            sqlite3_wal_hook(handle, { context, _, _, frames in
                guard let context else { return SQLITE_OK }
                Unmanaged<SQLiteConnection>.fromOpaque(context).takeUnretainedValue().walCommitHandler?(frames)
                return SQLITE_OK
            }, Unmanaged.passUnretained(self).toOpaque())
        }
    }
}
