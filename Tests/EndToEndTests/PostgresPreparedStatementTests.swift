import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import Testing

/// Kept statements whose rows are not read run as statements prepared under a name on their
/// connection (decision 0037), on a real PostgreSQL (Tools/postgres).
@Suite struct PostgresPreparedStatementTests {
    static let insert = "INSERT INTO samples (n, payload, label) VALUES (?, ?, ?)"

    /// How often PostgreSQL ran the statement prepared from `sql` on this connection; nil if it holds no such statement.
    static func executions(of sql: String, _ connection: PostgresStoreConnection) throws -> Int64? {
        let numbered = PostgresStoreConnection.numberPlaceholders(sql).sql
        let rows = try connection.query(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE statement = ?", [.text(numbered)])
        #expect(rows.count <= 1, "one prepared statement per text and connection, not one per execution: \(rows)")
        return rows.first?.first?.int64
    }

    @Test("a kept statement is prepared once on its connection and executed again without being sent or parsed again")
    func aKeptStatementIsPreparedOnce() async throws {
        let location = try TestPostgres.freshDatabase("prepared")
        let connection = try PostgresStoreConnection(location)
        try connection.execute("CREATE TABLE samples (n BIGINT NOT NULL, payload BYTEA, label BYTEA)")
        for n in 1...3 {
            let statement = try connection.cachedStatement(Self.insert)
            try statement.bind(Int64(n), at: 1)
            try statement.bind(bytes: [0, UInt8(n), 255], at: 2)
            try statement.bind(.text("row \(n)"), at: 3)
            try statement.run()
        }
        #expect(try Self.executions(of: Self.insert, connection) == 3)
        // What it wrote reads back exactly (raw bytes stay raw, cell values stay tagged).
        let read = try connection.cachedStatement("SELECT n, payload, label FROM samples ORDER BY n")
        var rows: [(Int64, [UInt8]?, CellValue)] = []
        while try read.step() { rows.append((read.int64(0), read.withBytes(1) { Array($0) }, read.value(2))) }
        read.reset()
        #expect(rows.map(\.0) == [1, 2, 3])
        #expect(rows.map(\.1) == [[0, 1, 255], [0, 2, 255], [0, 3, 255]])
        #expect(rows.map(\.2) == [.text("row 1"), .text("row 2"), .text("row 3")])
        // Statements whose rows are read stay unnamed: their rows come back in binary.
        #expect(try Self.executions(of: "SELECT n, payload, label FROM samples ORDER BY n", connection) == nil)
        // A statement run by text still says how many rows it changed.
        try connection.run("DELETE FROM samples WHERE n >= ?", [.integer(2)])
        #expect(connection.changes == 2)
    }

    @Test("a kept statement prepared before its table is rebuilt (as a layout move does) runs on the new table")
    func aPreparedStatementOutlivesARebuild() async throws {
        let location = try TestPostgres.freshDatabase("prepared_rebuild")
        let connection = try PostgresStoreConnection(location)
        try connection.execute("CREATE TABLE samples (n BIGINT NOT NULL, payload BYTEA, label BYTEA)")
        let statement = try connection.cachedStatement(Self.insert)
        try statement.bind(.integer(1), at: 1)
        try statement.bind(bytes: [1], at: 2)
        try statement.bind(.text("before"), at: 3)
        try statement.run()
        try connection.execute("""
            CREATE TABLE samples_new (n BIGINT NOT NULL, extra BIGINT, payload BYTEA, label BYTEA);
            INSERT INTO samples_new (n, payload, label) SELECT n, payload, label FROM samples;
            DROP TABLE samples;
            ALTER TABLE samples_new RENAME TO samples
            """)
        let again = try connection.cachedStatement(Self.insert)
        try again.bind(.integer(2), at: 1)
        try again.bind(bytes: [2], at: 2)
        try again.bind(.text("after"), at: 3)
        try again.run()
        #expect(try Self.executions(of: Self.insert, connection) == 2, "the same prepared statement, planned again by PostgreSQL")
        let labels = try connection.query("SELECT label FROM samples ORDER BY n", []).map { $0[0] }
        #expect(labels == [.text("before"), .text("after")])
    }
}
