import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting

/// The repository root, found from this file, for the shipped data model.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func shippedDataModel() throws -> DataModel {
    try DataModelFile.load(path: repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path)
}

/// A fresh temporary directory.
func temporaryDirectory(_ label: String = "kt") throws -> String { try TestDirectory.make(label) }

func newID() -> String { UUID().uuidString.lowercased() }

/// The pages of the whole feed as a device that sees everything gets them from `store` with this page
/// size: where each page ends, and how many cells it carries (pages end between rows, decision 0020).
func feedPages(_ store: ServerStore, pageSize: Int) throws -> [(cursor: Int64, cells: Int)] {
    var pages: [(cursor: Int64, cells: Int)] = []
    var cursor: Int64 = 0, floor: Int64 = 0
    while true {
        let page = try store.pull(since: cursor, floor: floor, limit: pageSize)
        pages.append((page.cursor, page.rows.reduce(0) { $0 + $1.cells.count }))
        cursor = page.cursor
        floor = page.floor ?? cursor
        if !page.more { return pages }
    }
}

extension Accounts {
    /// Adds a user with scopes unless one of that name exists.
    func ensureUser(_ name: String, role: Role, scopes: [String], profile: String? = nil) throws {
        if (try? user(name)) != nil { return }
        _ = try addUser(name: name, role: role, profile: profile, actor: "test")
        for scope in scopes { _ = try addScope(scope, to: name, actor: "test") }
    }
}

/// The project's servers: the shipped data model unless a test brings its own, and the store of
/// `KT_TEST_STORE` (SQLite unless it says `postgresql`, to run the whole suite there by hand).
extension TestServer {
    static func start(dataModel: DataModel? = nil, maxRequestBytes: Int = 16 * 1024 * 1024,
                      tls: SyncServerConfiguration.TLSFiles? = nil, store kind: StoreDialect? = nil,
                      directory existing: String? = nil) async throws -> TestServer {
        let model = try dataModel ?? shippedDataModel()
        let store: Store
        switch existing == nil ? kind ?? TestPostgres.defaultDialect : .sqlite {
        case .sqlite: store = .sqlite
        case .postgresql: store = .postgres(try await onThread { try TestPostgres.freshDatabase() })
        }
        return try await start(model: model, store: store, maxRequestBytes: maxRequestBytes, tls: tls, directory: existing)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Inserts a resident and a case on a replica and returns their ids.
func seedCase(on replica: Replica, name: String = "Mevrouw De Vries", team: String = "castricum-noord") throws -> (resident: String, case: String) {
    let resident = newID(), caseID = newID()
    try replica.transaction {
        try replica.execute("INSERT INTO residents (id, last_name, municipality) VALUES (?, ?, 'castricum')", [.text(resident), .text(name)])
        try replica.execute("INSERT INTO cases (id, resident_id, team, status, question) VALUES (?, ?, ?, 'melding', 'Trap op komen')",
                            [.text(caseID), .text(resident), .text(team)])
    }
    return (resident, caseID)
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.withLock { value += 1; return value } }
    var current: Int { lock.withLock { value } }
}

extension Replica {
    /// How many cell versions the replica knows.
    func knownCellCount() throws -> Int {
        guard case .integer(let n)? = try query("SELECT coalesce(sum(kt_versions_count(versions)), 0) FROM _kt_versions").rows.first?.first
        else { return -1 }
        return Int(n)
    }
}
