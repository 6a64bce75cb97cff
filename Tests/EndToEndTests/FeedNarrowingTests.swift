import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import Testing

/// A device of some teams reads the feed through its scopes: the database passes over other teams'
/// rows, so a page's limit counts what may be for the device (`FeedReader.scopeNarrowing`).
@Suite struct FeedNarrowingTests {
    @Test(arguments: [StoreDialect.sqlite, .postgresql])
    func aTeamDevicesPageIsFilledWithItsOwnTeamsRows(dialect: StoreDialect) async throws {
        let model = try shippedDataModel()
        let store = try await onThread { () -> ServerStore in
            switch dialect {
            case .sqlite: return try ServerStore(directory: try temporaryDirectory("narrowing"), dataModel: model)
            case .postgresql: return try ServerStore(postgres: try TestPostgres.freshDatabase("narrowing"), dataModel: model)
            }
        }
        let node = NodeID.random()
        var hlc = HybridLogicalClock.timestamp(milliseconds: UInt64(Date().timeIntervalSince1970 * 1000) - 60_000)
        func newCase(team: String) -> [Change] {
            let row = UUID().uuidString.lowercased()
            return [("team", CellValue.text(team)), ("status", .text("aanvraag")), ("question", .text("Hulp bij \(team)"))].map {
                hlc += 1
                return Change(id: "\(row)-\($0.0)", table: "cases", row: row, column: $0.0, value: $0.1,
                              version: CellVersion(hlc: hlc, node: node), base: nil)
            }
        }
        // Forty cases of another team first, then four of the device's own.
        let others = (0..<40).flatMap { _ in newCase(team: "other") }
        let own = (0..<4).flatMap { _ in newCase(team: "mine") }
        _ = try await onThread { try store.push(others + own, device: "office") }
        let consultant = Access(userID: "u", userName: "fatima", role: .consultant, scopes: ["team:mine"])

        // A page of twelve cells holds the device's own four cases whole; nothing of the device's is left after it.
        let page = try await onThread { try store.pull(since: 0, limit: 12, access: consultant) }
        #expect(Set(page.rows.map(\.row)) == Set(own.map(\.row)))
        #expect(page.rows.flatMap(\.cells).count == 12)
        let rest = try await onThread { try store.pull(since: page.cursor, limit: 12, access: consultant) }
        #expect(rest.rows.isEmpty && !rest.more)

        // A device that sees every scope reads the feed as it is: the first twelve cells are other cases.
        let office = Access(userID: "o", userName: "anne", role: .backOffice, scopes: [Access.everyScope])
        let officePage = try await onThread { try store.pull(since: 0, limit: 12, access: office) }
        #expect(officePage.more && Set(officePage.rows.map(\.row)).isDisjoint(with: own.map(\.row)))
    }
}
