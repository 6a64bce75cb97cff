import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelTesting
import Testing

/// The feed over one record per row (decision 0020): rows come in the order of their newest cell, and
/// a pull sends a row's cells newer than the floor of its pass.
@Suite("Feed of records")
struct RecordFeedTests {
    @Test("a row whose older cells lie before a later page's cursor still reaches a fresh device whole")
    func aRowStraddlingAPageBoundaryArrivesWhole() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        let first = try seedCase(on: laptop, name: "Eerste")
        try await laptop.sync()
        _ = try seedCase(on: laptop, name: "Tweede")
        try await laptop.sync()
        // The first case's newest cell is now the newest of all: its record comes last in the feed,
        // and its other cells have sequence numbers below the cursors of the pages before it.
        try await laptop.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(first.case)])
        try await laptop.sync()
        let pages = try feedPages(server.store, pageSize: 2)
        #expect(pages.count >= 4, "pages of two cells")
        let caseCells = try server.store.inspection.cellCount(table: "cases", row: first.case)
        #expect(pages.last?.cells == caseCells, "the last page carries the whole first case, older cells included")

        let report = try await office.sync(pageSize: 2)
        #expect(report.pages == pages.count)
        #expect(try office.snapshot() == laptop.snapshot())
        #expect(try await office.query("SELECT status, team FROM cases WHERE id = ?", [.text(first.case)]).rows
                == [[.text("plan"), .text("castricum-noord")]])
        await server.stop()
    }

    @Test("an incremental pull sends only the cells that changed, not the rest of their rows")
    func incrementalPullSendsChangedCellsOnly() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        var cases: [String] = []
        for i in 0..<5 { cases.append(try seedCase(on: laptop, name: "Inwoner \(i)").case) }
        try await laptop.sync()
        try await office.sync()
        for id in cases.prefix(3) { try await laptop.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(id)]) }
        try await laptop.sync()

        let report = try await office.sync(pageSize: 2)
        #expect(report.pulled.cellsReceived == 3, "one cell of each of three rows")
        #expect(report.pulled.cellsApplied == 3)
        #expect(try office.snapshot() == laptop.snapshot())
        await server.stop()
    }

    @Test("a pull without a floor gets the rows newer than its cursor whole")
    func withoutAFloorRowsComeWhole() async throws {
        let server = try await TestServer.start()
        let laptop = try server.replica("laptop")
        let seeded = try seedCase(on: laptop)
        try await laptop.sync()
        let head = try server.store.pull(since: 0, limit: 1_000).cursor
        try await laptop.execute("UPDATE cases SET status = 'plan' WHERE id = ?", [.text(seeded.case)])
        try await laptop.sync()
        let caseCells = try server.store.inspection.cellCount(table: "cases", row: seeded.case)
        let whole = try server.store.pull(since: head, limit: 1_000)
        #expect(whole.rows.map(\.cells.count) == [caseCells])
        let changed = try server.store.pull(since: head, floor: head, limit: 1_000)
        #expect(changed.rows.map { $0.cells.map(\.column) } == [["status"]])
        await server.stop()
    }

    @Test("pages end between rows and together carry every cell once, on SQLite and on PostgreSQL", arguments: [false, true])
    func pagesCarryEveryCellOnce(postgres: Bool) async throws {
        let model = try shippedDataModel()
        let store = try await onThread {
            postgres ? try ServerStore(postgres: try TestPostgres.freshDatabase("feed_pages"), dataModel: model)
                : try ServerStore(directory: try temporaryDirectory("feed-pages"), dataModel: model)
        }
        let node = try #require(NodeID(rawValue: 0x0123_4567_89ab_cdef))
        var changes: [Change] = []
        var hlc: UInt64 = 1 << 40
        func write(_ row: String, _ column: String, _ value: CellValue) {
            hlc += 1
            changes.append(Change(id: "\(node)-" + String(format: "%012d", changes.count + 1), table: "cases", row: row, column: column,
                                  value: value, version: CellVersion(hlc: hlc, node: node), base: nil))
        }
        // Forty rows of one cell, then ten of three: a PostgreSQL page is read in pieces of records.
        let single = (0..<40).map { _ in RowID.new() }, wide = (0..<10).map { _ in RowID.new() }
        for row in single { write(row, "status", .text("melding")) }
        for row in wide {
            write(row, "status", .text("plan"))
            write(row, "team", .text("castricum-noord"))
            write(row, "contact_person", .text("Anne"))
        }
        _ = try store.push(changes, device: "office")
        var cells: [String] = []
        var cursor: Int64 = 0, floor: Int64 = 0
        var sizes: [Int] = []
        while true {
            let page = try store.pull(since: cursor, floor: floor, limit: 30)
            let pageCells = page.rows.flatMap { row in row.cells.map { "\(row.row)|\($0.column)" } }
            sizes.append(pageCells.count)
            cells += pageCells
            cursor = page.cursor
            floor = page.floor ?? cursor
            if !page.more { break }
        }
        #expect(cells.count == 70 && Set(cells).count == 70, "every cell once")
        #expect(sizes.dropLast().allSatisfy { (30..<33).contains($0) }, "full pages of 30 cells, or a row more: \(sizes)")
    }
}
