import Foundation
import Testing
@testable import KeukentafelProtocol

@Suite struct ValidationTests {
    static let model = DataModel(version: 1, tables: [
        .init(name: "residents", columns: [
            .init(name: "name", type: .text, maxLength: 10, required: true),
            .init(name: "birth_date", type: .date),
            .init(name: "seen_at", type: .datetime),
            .init(name: "channel", type: .enum, values: ["digital", "paper"]),
            .init(name: "score", type: .real),
            .init(name: "count", type: .integer),
            .init(name: "flag", type: .boolean),
            .init(name: "parent", type: .reference, references: "residents"),
        ]),
    ])
    static let row = "0b8f0c4e-3c55-4a8a-9d2e-5f0f3e1c2b7a"

    func change(_ column: String, _ value: CellValue, table: String = "residents", row: String = row) -> Change {
        Change(id: "n-1", table: table, row: row, column: column, value: value,
               version: CellVersion(hlc: 1, node: NodeID(rawValue: 1)!), base: nil)
    }

    func code(_ c: Change) -> ErrorCode? { Self.model.validate(c)?.code }

    @Test func goodValuesPass() {
        for (column, value) in [("name", CellValue.text("Joep")), ("birth_date", .text("2024-02-29")), ("seen_at", .text("2026-11-23T10:00:00Z")),
                                ("seen_at", .text("2026-11-23T10:00:00.123Z")), ("channel", .text("paper")), ("score", .real(2.5)),
                                ("score", .integer(3)), ("count", .integer(-4)), ("flag", .integer(1)), ("parent", .text(Self.row)),
                                ("birth_date", .null), (Merge.deletedColumn, .integer(1))] {
            #expect(code(change(column, value)) == nil, "\(column) = \(value)")
        }
    }

    @Test func hostileValuesAreRefusedWithAStableCode() {
        let cases: [(Change, ErrorCode)] = [
            (change("name", .text(String(repeating: "x", count: 1_000_000))), .valueTooLong),
            (change("name", .text("a\u{0}b")), .invalidValue),
            (change("name", .null), .invalidValue),
            (change("name", .integer(3)), .invalidValue),
            (change("birth_date", .text("2026-02-30")), .invalidValue),
            (change("birth_date", .text("2025-02-29")), .invalidValue),
            (change("birth_date", .text("26-02-01")), .invalidValue),
            (change("seen_at", .text("2026-11-23 10:00:00")), .invalidValue),
            (change("seen_at", .text("2026-11-23T25:00:00Z")), .invalidValue),
            (change("channel", .text("pigeon")), .invalidValue),
            (change("score", .real(.nan)), .invalidValue),
            (change("score", .real(.infinity)), .invalidValue),
            (change("flag", .integer(2)), .invalidValue),
            (change("parent", .text("'; DROP TABLE residents; --")), .invalidValue),
            (change("nope", .text("x")), .unknownColumn),
            (change("name", .text("x"), table: "sqlite_master"), .unknownTable),
            (change("name", .text("x"), row: "1 OR 1=1"), .invalidRowID),
            (change("name", .text("x"), row: "0B8F0C4E-3C55-4A8A-9D2E-5F0F3E1C2B7A"), .invalidRowID),
            (change(Merge.deletedColumn, .integer(5)), .invalidValue),
        ]
        for (c, expected) in cases {
            #expect(code(c) == expected, "\(c.column) = \(c.value.description.prefix(30))")
        }
    }

    @Test func modelMistakesAreNamed() {
        let broken = DataModel(version: 1, tables: [
            .init(name: "cases", columns: [
                .init(name: "status", type: .enum, values: []),
                .init(name: "resident_id", type: .reference, references: "people"),
            ]),
        ])
        #expect(throws: DataModelError.self) { try broken.check() }
        do {
            try broken.check()
        } catch let error as DataModelError {
            #expect(error.description.contains("cases.status"))
            #expect(error.description.contains("'people'"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
        #expect(throws: DataModelError.self) { try DataModel(json: Data(#"{"version": 1, "tables": [{"name": "x", "columns": [{"name": "a", "type": "money"}]}]}"#.utf8)) }
    }

    @Test func wireTypesRoundTrip() throws {
        let request = PushRequest(node: NodeID(rawValue: 99)!, schemaVersion: 1, changes: [
            change("name", .text("Maryam")), change("score", .real(1.5)), change("count", .integer(Int64.max)), change("birth_date", .null),
        ])
        let decoded = try JSONDecoder().decode(PushRequest.self, from: JSONEncoder().encode(request))
        #expect(decoded.changes == request.changes)
        #expect(decoded.node == request.node)
    }

    @Test("a misspelt name gets the nearest one, and only when it is near and unambiguous")
    func nearestName() {
        let columns = ["status", "source", "team", "question", "contact_person"]
        #expect(DataModel.nearest("statsu", among: columns) == "status", "a swap of neighbours is one edit")
        #expect(DataModel.nearest("Status", among: columns) == "status")
        #expect(DataModel.nearest("contactperson", among: columns) == "contact_person")
        #expect(DataModel.nearest("tema", among: columns) == "team")
        #expect(DataModel.nearest("xyz", among: columns) == nil, "nothing near")
        #expect(DataModel.nearest("teal", among: ["team", "teas"]) == nil, "a tie is no guess")
        #expect(DataModel.nearest("casez", among: ["cases", "visits", "notes"]) == "cases")
    }
}
