import Foundation
import KeukentafelProcesses
import KeukentafelServer

/// PostgreSQL for the tests: the cluster named by `KT_TEST_POSTGRES_URL` (Tools/test starts one), or
/// else one `Tools/postgres start` starts on first use. Every test gets a database of its own.
///
/// Blocking (it runs `psql`): call from a thread of its own (`onThread`), never the cooperative pool.
enum TestPostgres {
    /// The store the tests use when they do not ask for one: `KT_TEST_STORE=postgresql` or SQLite.
    static var defaultDialect: StoreDialect {
        ProcessInfo.processInfo.environment["KT_TEST_STORE"].flatMap(StoreDialect.init(rawValue:)) ?? .sqlite
    }

    private static let cluster = Result<String, any Error> {
        if let url = ProcessInfo.processInfo.environment["KT_TEST_POSTGRES_URL"], !url.isEmpty { return url }
        let started = try run(repositoryRoot.appendingPathComponent("Tools/postgres").path, ["start"])
        guard let url = started.split(separator: "\n").last.map(String.init), url.hasPrefix("postgres://") else {
            throw TestFailure("Tools/postgres start printed no URL: \(started)")
        }
        return url
    }

    /// The URL of the test cluster's administrative database.
    static func clusterURL() throws -> String { try cluster.get() }

    /// A new, empty database on the test cluster, named with this run's prefix (`Tools/test` drops
    /// them after a run that passed).
    static func freshDatabase(_ label: String = "kt") throws -> PostgresLocation {
        let admin = try clusterURL()
        let prefix = ProcessInfo.processInfo.environment["KT_TEST_DATABASE_PREFIX"] ?? "kttest_"
        let name = "\(prefix)\(label)_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try run("psql", [admin, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE \(name)"])
        var location = try PostgresLocation(url: admin)
        location.database = name
        return location
    }

    /// Runs a program to its end and returns its output; a failure carries its error output.
    static func run(_ program: String, _ arguments: [String]) throws(TestFailure) -> String {
        let result: Spawn.Result
        // Through posix_spawn, not Foundation's Process (see `Spawn`); `env` finds the program on PATH.
        do { result = try Spawn.run(program, arguments) } catch { throw TestFailure("cannot run \(program): \(error)") }
        guard result.status == 0 else {
            throw TestFailure("\(program) \(arguments.joined(separator: " ")) failed: \(result.error)")
        }
        return result.output
    }
}
