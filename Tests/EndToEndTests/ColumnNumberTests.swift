import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// Records and history entries name columns by number (decision 0034): stores of the previous release
/// are read as they are, numbers never change meaning, and a number given by another process is found.
@Suite("Column numbers")
struct ColumnNumberTests {
    static let binaryRecordsDump = repositoryRoot.appendingPathComponent("Tests/Fixtures/store-binary-records.sql").path
    static let caseID = RecordFormatTests.caseID

    @Test("a numbered column costs one byte where its name cost its length and two")
    func numbersAreSmall() throws {
        let cells = try RecordFormatTests.sampleCells()
        let numbers = Numbering(["_deleted"] + cells.keys.sorted())
        let spelled = RowCoding.encode(cells, columns: .none, devices: .none)
        let numbered = RowCoding.encode(cells, columns: numbers, devices: .none)
        let saved: Int = cells.keys.map { $0.utf8.count + 1 }.reduce(0, +)
        #expect(spelled.count - numbered.count == saved)
        #expect(try RowCoding.decode(numbered, columns: .fixed(numbers), devices: .fixed(.none)) == cells)
        // A numbered device (decision 0036) costs one byte where its id cost its length and two.
        let devices = Numbering([(name: "laptop-fatima", number: 1), (name: "office-anne", number: 2)])
        let both = RowCoding.encode(cells, columns: numbers, devices: devices)
        #expect(numbered.count - both.count == "laptop-fatima".utf8.count + 1 + "office-anne".utf8.count + 1)
        #expect(try RowCoding.decode(both, columns: .fixed(numbers), devices: .fixed(devices)) == cells)
        #expect(numbered.first == RowCoding.format && RowCoding.format == 3)
    }

    /// `Tests/Fixtures/store-binary-records.sql`: the README walkthrough by the release before this
    /// decision (`c3aa7b7`), every record and history entry in format 2 (columns by name).
    @Test("a store of the previous release is read as it is; what changes is written with numbers")
    func previousReleaseStoreIsRead() async throws {
        let (directory, path) = try StoreLayoutTests.dataDirectory(from: Self.binaryRecordsDump, label: "binary-records")
        let before: [String], historyBefore: [String]
        do {
            let raw = try SQLiteConnection(path: path)
            before = try StoreLayoutTests.recordCells(raw)
            historyBefore = try StoreLayoutTests.newChanges(raw)
            #expect(before.count > 200 && historyBefore.count > 200, "the fixture is what it says")
            #expect(try raw.scalar("SELECT count(*) FROM records WHERE hex(substr(cells, 1, 1)) <> '02'") == .integer(0))
            #expect(try raw.scalar("SELECT count(*) FROM history WHERE hex(substr(changes, 1, 1)) <> '02'") == .integer(0))
        }
        let server = try await TestServer.start(directory: directory)
        #expect(try server.store.reader.withConnection { try StoreLayoutTests.recordCells($0) } == before, "every cell, every field")
        #expect(try server.store.reader.withConnection { try StoreLayoutTests.newChanges($0) } == historyBefore, "every change, in order")
        let raw = try SQLiteConnection(path: path)
        #expect(try raw.scalar("SELECT count(*) FROM records WHERE hex(substr(cells, 1, 1)) <> '02'") == .integer(0), "nothing rewritten")
        let numbered = try raw.query("SELECT no, name FROM column_names ORDER BY no").compactMap { $0[1].string }
        #expect(numbered == ColumnNames.columns(of: server.store.dataModel), "the deletion mark, then the model's columns in its order")

        // A new device gets it all, as the walkthrough left it.
        let desk = try server.replica("new-desk")
        #expect(try await desk.sync().pulled.cellsApplied > 100)
        #expect(try await desk.query("SELECT status, next_contact_due FROM cases WHERE id = ?", [.text(Self.caseID)]).rows
                == [[.text("levering"), .null]])
        #expect(try await desk.query("SELECT hours_per_week FROM care_relations WHERE id = '70000000-0000-4000-8000-000000000001'").rows
                == [[.real(12.5)]])

        // A change to an old row: its record and the new entry in format 3, the old entries still read.
        try await desk.execute("UPDATE cases SET status = 'evaluatie' WHERE id = ?", [.text(Self.caseID)])
        #expect(try await desk.sync().pushed.applied == 1)
        #expect(try raw.scalar("SELECT hex(substr(cells, 1, 1)) FROM records WHERE tbl = 'cases' AND row_id = ?", [.text(Self.caseID)])
                == .text("03"))
        #expect(try raw.scalar("SELECT hex(substr(changes, 1, 1)) FROM history WHERE tbl = 'cases' AND row_id = ? ORDER BY id DESC LIMIT 1",
                               [.text(Self.caseID)]) == .text("03"))
        let statuses = try server.store.history(table: "cases", row: Self.caseID, column: "status").map(\.value)
        #expect(statuses.suffix(3) == [.text("beschikking"), .text("levering"), .text("evaluatie")], "old entries and the new: \(statuses)")
        let other = try server.replica("second-desk")
        _ = try await other.sync()
        #expect(try await other.query("SELECT status, next_contact_due FROM cases WHERE id = ?", [.text(Self.caseID)]).rows
                == [[.text("evaluatie"), .null]])
        await server.stop()
    }

    /// The data model with a text column `name` added to `cases` (after its others).
    static func model(_ base: DataModel, adding names: [String]) throws -> DataModel {
        var model = base
        let index = try #require(model.tables.firstIndex { $0.name == "cases" })
        var column = try #require(model.tables[index].columns.first { $0.type == .text && $0.required != true && $0.policy == nil })
        for name in names {
            column.name = name
            model.tables[index].columns.append(column)
        }
        return model
    }

    static func change(_ row: String, _ column: String, _ value: String, counter: Int, node: NodeID) -> Change {
        Change(id: "\(node)-" + String(format: "%08d", counter), table: "cases", row: row, column: column, value: .text(value),
               version: CellVersion(hlc: HybridLogicalClock.timestamp(milliseconds: UInt64(Date().timeIntervalSince1970 * 1000)), node: node), base: nil)
    }

    /// Opens the same new store, as another process would, with the model it is given.
    static func opener(_ dialect: StoreDialect, _ label: String) async throws -> @Sendable (DataModel) throws -> ServerStore {
        try await onThread { () -> @Sendable (DataModel) throws -> ServerStore in
            switch dialect {
            case .sqlite:
                let directory = try temporaryDirectory(label)
                return { try ServerStore(directory: directory, dataModel: $0) }
            case .postgresql:
                let database = try TestPostgres.freshDatabase(label.replacingOccurrences(of: "-", with: "_"))
                return { try ServerStore(postgres: database, dataModel: $0) }
            }
        }
    }

    @Test("a column another process numbered after this one opened is read by reading the numbers again",
          arguments: [StoreDialect.sqlite, .postgresql])
    func anotherProcessesNumberIsFound(dialect: StoreDialect) async throws {
        let base = try shippedDataModel()
        let open = try await Self.opener(dialect, "column-numbers")
        let (old, newer) = try await onThread { () -> (ServerStore, ServerStore) in
            let old = try open(base)
            // A second process with a newer model (ktd admin next to ktd serve, or another ktd on PostgreSQL).
            return (old, try open(try Self.model(base, adding: ["wishes"])))
        }
        #expect(old.columnNames.current.number("wishes") == nil)
        let number = try #require(newer.columnNames.current.number("wishes"))
        #expect(number == ColumnNames.columns(of: base).count + 1)
        let node = NodeID.random(), row = RowID.new()
        let pushed = try newer.push([Self.change(row, "team", "castricum-noord", counter: 1, node: node),
                                     Self.change(row, "wishes", "weer zelf boodschappen doen", counter: 2, node: node)], device: "office")
        #expect(pushed.results.allSatisfy { $0.status == .applied })
        #expect(try old.inspection.cell(table: "cases", row: row, column: "wishes")?.value == .text("weer zelf boodschappen doen"))
        #expect(old.columnNames.current.number("wishes") == number, "learnt on the miss")
        #expect(try old.history(table: "cases", row: row).map(\.column) == ["team", "wishes"])
        // Opening with the older model again changes no number.
        let again = try await onThread { try open(base) }
        #expect(again.columnNames.current == newer.columnNames.current)
    }

    @Test("a device another process added is named by its number in records, and this process finds it",
          arguments: [StoreDialect.sqlite, .postgresql])
    func anotherProcessesDeviceIsFound(dialect: StoreDialect) async throws {
        let model = try shippedDataModel()
        let open = try await Self.opener(dialect, "device-numbers")
        let (old, newer) = try await onThread { (try open(model), try open(model)) }
        _ = try newer.accounts.addUser(name: "fatima", role: .consultant, actor: "test")
        let laptop = try newer.accounts.addDevice(name: "laptop-nieuw", user: "fatima").device.id
        let number = try #require(try newer.reader.withConnection { try $0.scalar("SELECT no FROM devices WHERE id = ?", [.text(laptop)])?.int64 })
        let row = RowID.new()
        let pushed = try newer.push([Self.change(row, "team", "castricum-noord", counter: 1, node: NodeID.random())], device: laptop)
        #expect(pushed.results.allSatisfy { $0.status == .applied })
        // The record names the laptop by its number: its id is nowhere in the bytes.
        let bytes = try #require(try newer.reader.withConnection {
            try $0.bytes("SELECT cells FROM records WHERE tbl = 'cases' AND row_id = ?", [.text(row)])
        })
        #expect(bytes.first == RowCoding.format && bytes.firstRange(of: Array(laptop.utf8)) == nil)
        #expect(old.deviceNumbers.current.name(Int(number)) == nil)
        let cells = try old.reader.withConnection { try Records($0, store: old).cells(table: "cases", row: row) }
        #expect(cells?["team"]?.device == laptop)
        #expect(old.deviceNumbers.current.name(Int(number)) == laptop, "learnt on the miss")
    }

    @Test("after a restore of a store numbered differently, this process writes the restored store's numbers")
    func restoreTakesTheBackupsNumbers() async throws {
        let base = try shippedDataModel()
        let directory = try temporaryDirectory("column-restore")
        let backup = try temporaryDirectory("column-restore-backup") + "/backup.sqlite"
        let node = NodeID.random(), row = RowID.new()
        try await onThread {
            let first = try ServerStore(directory: directory, dataModel: base)
            _ = try first.push([Self.change(row, "team", "castricum-noord", counter: 1, node: node)], device: "office")
            try first.backups.backup(to: backup)
        }
        // Since the backup, "later" was numbered first and then "earlier", which the model lists before it.
        _ = try await onThread { try ServerStore(directory: directory, dataModel: try Self.model(base, adding: ["later"])) }
        let store = try await onThread { try ServerStore(directory: directory, dataModel: try Self.model(base, adding: ["earlier", "later"])) }
        let later = try #require(store.columnNames.current.number("later"))
        #expect(store.columnNames.current.number("earlier") == later + 1)
        _ = try store.backups.restore(from: backup, actor: "test")
        // The backup had neither: the model's order numbers them now, and this process writes by those numbers.
        #expect(store.columnNames.current.number("earlier") == later)
        _ = try store.push([Self.change(row, "later", "na het herstel", counter: 2, node: node)], device: "office")
        let reopened = try await onThread { try ServerStore(directory: directory, dataModel: try Self.model(base, adding: ["earlier", "later"])) }
        #expect(try reopened.inspection.cell(table: "cases", row: row, column: "later")?.value == .text("na het herstel"))
        #expect(try reopened.inspection.cell(table: "cases", row: row, column: "earlier") == nil)
    }
}
