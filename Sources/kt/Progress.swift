import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

/// Progress of a long pull: an updating line on a terminal, a line per 100,000 cells otherwise.
enum Progress {
    nonisolated(unsafe) static var drawn = false

    /// Progress of a long pull on standard error: an updating line on a terminal, a line per 100,000
    /// cells otherwise (logs).
    /// The engine's status gives the estimate of the cells to come (from the server's head of the feed).
    static func reporter(for engine: SyncEngine) -> @Sendable (SyncReport) -> Void {
        let lines = Locked(ProgressLines(terminal: isatty(STDERR_FILENO) == 1))
        let started = Date()
        return { [weak engine] report in
            let expected = engine?.currentStatus.cellsExpected
            let elapsed = Date().timeIntervalSince(started)
            guard let line = lines.withLock({
                $0.line(cells: report.pulled.cellsReceived, pages: report.pages, cursor: report.cursor, expected: expected, elapsedSeconds: elapsed)
            }) else { return }
            FileHandle.standardError.write(Data(line.utf8))
            if line.hasPrefix("\r") { drawn = true }
        }
    }

    static func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
    }

    final class Locked<Value>: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Value
        init(_ value: Value) { self.value = value }
        func withLock<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&value) } }
    }
}
