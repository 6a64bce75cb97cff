import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTesting
import Testing

/// Typed records (issue 18): rows decode into `Decodable` types, `Encodable` values insert and update,
/// with the data model's checks and clear errors for what does not fit.
@Suite struct TypedRecordTests {
    struct Case: Codable, Equatable {
        var id: String
        var resident_id: String
        var team: String
        var status: String?
        var domains: [String]?
        var melding_date: String?
    }

    struct Visit: Codable, Equatable {
        enum Kind: String, Codable { case home_visit, kitchen_table }
        var id: String
        var case_id: String
        var happened_at: Date
        var kind: Kind
        var client_support_offered: Bool?
    }

    @Test("a record inserted, fetched, updated and synced keeps its values and types")
    func roundTrip() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop"), office = try server.replica("office")
        let (resident, _) = try seedCase(on: laptop)

        var record = Case(id: RowID.new(), resident_id: resident, team: "castricum-noord", status: "melding", domains: ["wmo", "jeugd"], melding_date: nil)
        try laptop.insert(record, into: "cases")
        #expect(try laptop.fetchOne(Case.self, "SELECT * FROM cases WHERE id = ?", [.text(record.id)]) == record)
        #expect(try await laptop.query("SELECT melding_date FROM cases WHERE id = ?", [.text(record.id)]).rows == [[.null]], "nil leaves it unset")

        let visit = Visit(id: RowID.new(), case_id: record.id, happened_at: Date(timeIntervalSince1970: 1_764_583_200.25), kind: .kitchen_table,
                          client_support_offered: true)
        try laptop.insert(visit, into: "visits")
        #expect(try await laptop.fetch(Visit.self, "SELECT * FROM visits WHERE id = ?", [.text(visit.id)]) == [visit])

        record.status = "plan"
        record.domains = nil  // left as it is by an update
        try laptop.update(record, in: "cases")
        let updated = try #require(try laptop.fetchOne(Case.self, "SELECT * FROM cases WHERE id = ?", [.text(record.id)]))
        #expect(updated.status == "plan" && updated.domains == ["wmo", "jeugd"])

        try await laptop.sync()
        try await office.sync()
        #expect(try office.fetchOne(Case.self, "SELECT * FROM cases WHERE id = ?", [.text(record.id)])?.status == "plan")
        #expect(try office.fetchOne(Visit.self, "SELECT * FROM visits WHERE id = ?", [.text(visit.id)]) == visit)
    }

    @Test("what does not fit is an error that says what: a table, a column, a value, a type, a missing row")
    func clearErrors() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop")
        let (resident, caseID) = try seedCase(on: laptop)
        let record = Case(id: RowID.new(), resident_id: resident, team: "castricum-noord", status: "melding", domains: nil, melding_date: nil)

        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        #expect(message { try laptop.insert(record, into: "casez") }.contains("did you mean 'cases'"))
        struct Typo: Encodable { var id: String; var statsu: String }
        #expect(message { try laptop.insert(Typo(id: RowID.new(), statsu: "plan"), into: "cases") }.contains("did you mean 'status'"))
        var wrong = record
        wrong.status = "no_such_status"
        #expect(message { try laptop.insert(wrong, into: "cases") }.contains("expected one of"))
        #expect(try laptop.rowCount("cases") == 1, "nothing half-stored")
        #expect(message { _ = try laptop.fetch(Visit.self, "SELECT * FROM cases") }.contains("no column 'case_id'"))
        struct Numbered: Decodable { var id: String; var team: Int }
        #expect(message { _ = try laptop.fetch(Numbered.self, "SELECT id, team FROM cases") }.contains("is not a whole number"))
        #expect(message { try laptop.update(record, in: "cases") }.contains("no row"))
        #expect(try await laptop.fetch(Case.self, "SELECT * FROM cases").map(\.id) == [caseID])
    }
}
