import KeukentafelTerminal
import Testing

@Suite struct ProgressLinesTests {
    @Test func logsGetALinePerStepAndTerminalsAnUpdatingLine() {
        var log = ProgressLines(terminal: false, every: 100_000)
        var printed: [String] = []
        for page in 1...30 {
            if let line = log.line(cells: page * 20_000, pages: page, cursor: Int64(page)) { printed.append(line) }
        }
        #expect(printed == ["pulling: 100000 cells in 5 pages\n", "pulling: 200000 cells in 10 pages\n", "pulling: 300000 cells in 15 pages\n",
                            "pulling: 400000 cells in 20 pages\n", "pulling: 500000 cells in 25 pages\n", "pulling: 600000 cells in 30 pages\n"])
        var quiet = ProgressLines(terminal: false)
        #expect(quiet.line(cells: 900, pages: 1, cursor: 9) == nil, "a short pull prints nothing")
        var terminal = ProgressLines(terminal: true)
        #expect(terminal.line(cells: 40_000, pages: 2, cursor: 7) == "\rpulling: 40000 cells in 2 pages, cursor 7   ")
        #expect(terminal.line(cells: 60_000, pages: 3, cursor: 9)?.hasPrefix("\r") == true, "every page redraws the line")
    }

    @Test("with the server's estimate: a total, a percentage and the time left")
    func aTotalAPercentageAndTheTimeLeft() {
        var terminal = ProgressLines(terminal: true)
        #expect(terminal.line(cells: 40_000, pages: 2, cursor: 7, expected: 160_000, elapsedSeconds: 4)
                == "\rpulling: 40000 of about 160000 (25%, about 12 s left) cells in 2 pages, cursor 7   ")
        var log = ProgressLines(terminal: false, every: 100_000)
        #expect(log.line(cells: 100_000, pages: 5, cursor: 9, expected: 1_000_000, elapsedSeconds: 20)
                == "pulling: 100000 of about 1000000 (10%, about 3 min left) cells in 5 pages\n")
        var last = ProgressLines(terminal: true)
        #expect(last.line(cells: 50_000, pages: 3, cursor: 9, expected: 50_000, elapsedSeconds: 5)
                == "\rpulling: 50000 cells in 3 pages, cursor 9   ", "done: no estimate left to give")
    }
}
