import Foundation
import Testing
import KeukentafelSQLite

/// The server's SQLite store checkpoints its write-ahead log on a thread of its own (decision 0016).
@Suite struct BackgroundCheckpointerTests {
    @Test func theWriterOnlyAppendsToTheLogAndTheThreadCopiesItBack() throws {
        let path = try temporaryDirectory("checkpoint") + "/db.sqlite"
        let writer = try SQLiteConnection(path: path)
        try writer.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        let checkpointer = try BackgroundCheckpointer(writer: writer, pages: 50)
        let body = String(repeating: "mantelzorger ", count: 300)  // about one page per row
        func commit(_ rows: Range<Int>) throws {
            try writer.transaction(immediate: true) {
                for id in rows { try writer.run("INSERT INTO t (id, body) VALUES (?, ?)", [.integer(Int64(id)), .text(body)]) }
            }
        }
        func size(_ file: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int) ?? 0 }
        try commit(0..<1)
        let before = checkpointer.completedCheckpoints

        // While the thread is held, commits far past the threshold, and past SQLite's own of 1,000
        // pages, leave the database file alone: SQLite's checkpoint in the commit is off.
        let (mainWhilePaused, logWhilePaused) = try checkpointer.paused {
            let main = size(path)
            try commit(1..<1_100)
            #expect(size(path) == main, "the writer's commits wrote no pages into the database file")
            return (main, size(path + "-wal"))
        }
        #expect(logWhilePaused > 1_100 * 4096)

        // Released, the thread copies the log back.
        try #require(checkpointer.waitForCheckpoints(before + 1, timeout: 20), "the thread checkpointed")
        #expect(size(path) > mainWhilePaused + 1_000 * 4096, "the pages reached the database file")

        // The log is started over, not grown: many more commits fit in the file it already has.
        for start in stride(from: 1_100, to: 2_900, by: 60) {  // each commit passes the threshold of 50 pages
            let done = checkpointer.completedCheckpoints
            try commit(start..<start + 60)
            try #require(checkpointer.waitForCheckpoints(done + 1, timeout: 20))
        }
        #expect(size(path + "-wal") <= logWhilePaused, "the log was reused after each checkpoint")
        #expect(try writer.scalar("SELECT count(*) FROM t") == .integer(2_900))
        checkpointer.stop()
    }
}
