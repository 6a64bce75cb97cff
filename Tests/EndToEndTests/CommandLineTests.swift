import Foundation
import KeukentafelClient
import KeukentafelProcesses
import KeukentafelServer
import Testing

/// The README walkthrough, typed as a newcomer would: the real `ktd` and `kt` binaries as child
/// processes, a server on a loopback port, two replicas and a conflict.
@Suite struct CommandLineTests {
    /// Where `swift build` put ktd and kt: next to the test bundle.
    static let binDirectory: URL = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("ktd").path) { return directory }
            directory = directory.deletingLastPathComponent()
        }
        return repositoryRoot.appendingPathComponent(".build/debug")
    }()

    struct Result: Sendable {
        var status: Int32
        var output: String
        var error: String
    }

    /// Runs a tool to completion on a thread of its own (waiting blocks; the cooperative pool must stay free
    /// for the servers other tests run in this process).
    @discardableResult
    func run(_ tool: String, _ arguments: [String], in directory: String, expect status: Int32 = 0) async throws -> Result {
        let result = try await onThread { try Self.runBlocking(tool, arguments, in: directory) }
        #expect(result.status == status, "\(tool) \(arguments.joined(separator: " ")): \(result.output) \(result.error)")
        return result
    }

    static let passphrase = "passphrase of the command-line tests"

    /// `fromPath`: started as a user would from a shell, by name through `PATH` (then argv[0] is the bare name).
    static func runBlocking(_ tool: String, _ arguments: [String], in directory: String, fromPath: Bool = false) throws -> Result {
        // Through posix_spawn, not Foundation's Process (see `Spawn`).
        // `kt init` encrypts by default: every replica of these tests is encrypted, with this passphrase.
        let result = fromPath
            ? try Spawn.run(tool, arguments, in: directory, environment: ["PATH": "\(binDirectory.path):/usr/bin:/bin", "KT_PASSPHRASE": passphrase])
            : try Spawn.run(Self.binDirectory.appendingPathComponent(tool).path, arguments, in: directory,
                            environment: ProcessInfo.processInfo.environment.merging(["KT_PASSPHRASE": passphrase]) { $1 })
        return Result(status: result.status, output: result.output, error: result.error)
    }

    /// Starts `ktd serve` on a free port and returns it with its URL once it listens.
    func startServer(data: String, in directory: String, port: Int = 0) async throws -> (SpawnedProcess, String) {
        try await onThread { try Self.startServerBlocking(data: data, in: directory, port: port) }
    }

    static func startServerBlocking(data: String, in directory: String, port: Int = 0) throws -> (SpawnedProcess, String) {
        let server = try ServerProcess.start(bin: binDirectory, data: data, schema: repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path,
                                             port: port, in: directory)
        return (server.process, server.url)
    }

    func token(_ json: String) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        return try #require(object?["token"] as? String)
    }

    @Test func theReadmeWalkthroughWorks() async throws {
        let work = try temporaryDirectory("walkthrough")
        // The data directory Tools/run and the README use is ktd's own default.
        let data = work + "/keukentafel-data"
        for file in ["README.md", "Tools/run"] {
            let text = try String(contentsOf: repositoryRoot.appendingPathComponent(file), encoding: .utf8)
            #expect(text.contains("keukentafel-data") && !text.contains("demo-data"), "\(file) names the default data directory")
        }
        try await run("ktd", ["admin", "demo", "--data", data, "--schema", repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path], in: work)
        let laptopToken = try token(try await run("ktd", ["admin", "device", "add", "laptop-fatima", "--user", "fatima", "--data", data, "--json"], in: work).output)
        let officeToken = try token(try await run("ktd", ["admin", "device", "add", "office-anne", "--user", "anne", "--data", data, "--json"], in: work).output)
        let (server, url) = try await startServer(data: data, in: work)
        defer { server.terminate() }

        try await run("kt", ["init", "--db", "fatima.sqlite", "--server", url, "--token", laptopToken], in: work)
        try await run("kt", ["init", "--db", "office.sqlite", "--server", url, "--token", officeToken], in: work)
        try await run("kt", ["sync", "--db", "fatima.sqlite"], in: work)
        let officeFirstSync = try await run("kt", ["sync", "--db", "office.sqlite", "--json"], in: work)
        #expect(officeFirstSync.output.contains("\"cellsApplied\" : \(DemoData.cellCount)"), "the back office sees everything")
        let cases = try await run("kt", ["sql", "--db", "fatima.sqlite", "SELECT c.id, r.last_name, c.status FROM cases c JOIN residents r ON r.id = c.resident_id"], in: work)
        #expect(cases.output.contains("De Vries") && cases.output.contains("Jansen"), "her team's two cases")
        #expect(!cases.output.contains("El Amrani") && !cases.output.contains("Kowalski"), "not other teams' cases")
        let allCases = try await run("kt", ["sql", "--db", "office.sqlite", "SELECT count(*) FROM cases"], in: work)
        #expect(allCases.output.contains("5"))

        let c = "c0000000-0000-4000-8000-000000000005"
        try await run("kt", ["sql", "--db", "fatima.sqlite", "UPDATE cases SET status = 'beschikking', next_contact_due = '2027-01-15' WHERE id = '\(c)'"], in: work)
        try await run("kt", ["sql", "--db", "fatima.sqlite", "INSERT INTO notes (id, case_id, author, body) VALUES ('\(newID())', '\(c)', 'Fatima', 'Dochter komt twee keer per week.')"], in: work)
        try await run("kt", ["sql", "--db", "office.sqlite", "UPDATE cases SET status = 'levering' WHERE id = '\(c)'"], in: work)
        try await run("kt", ["sync", "--db", "fatima.sqlite"], in: work)
        let officeSync = try await run("kt", ["sync", "--db", "office.sqlite"], in: work)
        #expect(officeSync.output.contains("1 in conflict"))
        try await run("kt", ["sync", "--db", "fatima.sqlite"], in: work)

        for db in ["fatima.sqlite", "office.sqlite"] {
            let row = try await run("kt", ["sql", "--db", db, "--json", "SELECT status, next_contact_due FROM cases WHERE id = '\(c)'"], in: work)
            #expect(row.output.contains("\"status\" : \"levering\""), "\(db): \(row.output)")
            #expect(row.output.contains("2027-01-15"))
            let notes = try await run("kt", ["sql", "--db", db, "SELECT count(*) AS n FROM notes WHERE case_id = '\(c)'"], in: work)
            #expect(notes.output.contains("2"))
        }
        let list = try await run("kt", ["conflicts", "list", "--db", "fatima.sqlite"], in: work)
        #expect(list.output.contains("beschikking") && list.output.contains("levering") && list.output.contains("yes"))
        let show = try await run("kt", ["conflicts", "show", "1", "--db", "fatima.sqlite"], in: work)
        #expect(show.output.contains("flagged for review"))
        // A conflict that is not there: the same words and the same exit code whichever command asks.
        let missing = [["conflicts", "show", "42"], ["conflicts", "resolve", "42", "--keep", "winner"], ["conflicts", "resolve", "42", "--value", "x"]]
        var answers: [String] = []
        for command in missing {
            answers.append(try await run("kt", command + ["--db", "fatima.sqlite"], in: work, expect: 1).error)
        }
        #expect(answers.allSatisfy { $0.contains("no conflict 42 on this device (run `kt sync` to fetch new ones)") && !$0.contains("Usage:") },
                "\(answers)")
        let status = try await run("kt", ["status", "--db", "fatima.sqlite"], in: work)
        #expect(status.output.contains("1 of them lost by writes from this device"))
        #expect(status.output.contains("your cases.status = beschikking lost to levering by office-anne"), "\(status.output)")
        let serverList = try await run("ktd", ["admin", "conflicts", "list", "--json"], in: work)
        #expect(serverList.output.contains("\"loserValue\" : \"beschikking\""))

        // Fatima restores her losing value in one action; the decision reaches the office.
        let resolve = try await run("kt", ["conflicts", "resolve", "1", "--keep", "loser", "--note", "besluit is genomen", "--db", "fatima.sqlite"], in: work)
        #expect(resolve.output.contains("resolved on this device"))
        try await run("kt", ["sync", "--db", "fatima.sqlite"], in: work)
        try await run("kt", ["sync", "--db", "office.sqlite"], in: work)
        let restored = try await run("kt", ["sql", "--db", "office.sqlite", "--json", "SELECT status FROM cases WHERE id = '\(c)'"], in: work)
        #expect(restored.output.contains("beschikking"))
        let resolvedList = try await run("kt", ["conflicts", "list", "--db", "office.sqlite"], in: work)
        #expect(resolvedList.output.contains("resolved") && !resolvedList.output.contains("\u{1B}["), "no colour when not on a terminal")
        let history = try await run("kt", ["history", "cases", c, "status", "--db", "office.sqlite"], in: work)
        #expect(history.output.contains("laptop-fatima") && history.output.contains("office-anne") && history.output.contains("beschikking"))
        // A typo in the table, the row id or the column is an error, not "No history for this record."
        let wrongTable = try await run("kt", ["history", "casez", c, "--db", "office.sqlite"], in: work, expect: 64)
        #expect(wrongTable.error.contains("no table 'casez'") && wrongTable.error.contains("cases"), "\(wrongTable.error)")
        let wrongRow = try await run("kt", ["history", "cases", "x", "--db", "office.sqlite"], in: work, expect: 64)
        #expect(wrongRow.error.contains("'x' is not a row id"), "\(wrongRow.error)")
        let wrongColumn = try await run("kt", ["history", "cases", c, "statsu", "--db", "office.sqlite"], in: work, expect: 64)
        #expect(wrongColumn.error.contains("no column 'statsu' in cases"), "\(wrongColumn.error)")
        let wrongServerTable = try await run("ktd", ["admin", "history", "casez", c, "--data", data], in: work, expect: 64)
        #expect(wrongServerTable.error.contains("no table 'casez'"), "\(wrongServerTable.error)")
        let serverHistory = try await run("ktd", ["admin", "history", "cases", c, "status", "--data", data, "--json"], in: work)
        #expect(serverHistory.output.contains("\"deviceName\" : \"office-anne\""))

        // Deadlines, offline: the server is no longer needed.
        let due = try await run("kt", ["due", "--db", "office.sqlite", "--today", "2026-12-01", "--within", "30"], in: work)
        #expect(due.output.contains("8d OVERDUE") && due.output.contains("Milena Kowalski"), "\(due.output)")
        #expect(due.output.contains("Sanne Jansen") && due.output.contains("investigation"))

        let refused = try await run("kt", ["sql", "--db", "fatima.sqlite", "UPDATE cases SET melding_date = '2026-02-30' WHERE id = '\(c)'"], in: work, expect: 1)
        #expect(refused.error.contains("cases.melding_date"))
        for (sql, says) in [("SELECT statsu FROM cases", "no such column: statsu (did you mean 'status'?)"),
                            ("SELECT c.statsu FROM cases c", "(did you mean 'status'?)"),
                            ("SELECT * FROM casez", "no such table: casez (did you mean 'cases'?)")] {
            let typo = try await run("kt", ["sql", "--db", "fatima.sqlite", sql], in: work, expect: 1)
            #expect(typo.error.contains(says) && !typo.error.contains("SQLite code"), "\(typo.error)")
        }
    }

    /// A mistyped data directory or model file is an error that names it; nothing is created.
    @Test func adminCommandsRefuseADataDirectoryWithoutAStore() async throws {
        let work = try temporaryDirectory("no-store")
        let schema = repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path
        let missing = try await run("ktd", ["admin", "user", "list", "--data", work + "/demo-data"], in: work, expect: 64)
        #expect(missing.error.contains("'\(work)/demo-data' does not exist") && missing.error.contains("ktd admin init"), "\(missing.error)")
        let conflicts = try await run("ktd", ["admin", "conflicts", "list", "--data", work + "/demo-data", "--json"], in: work, expect: 64)
        #expect(!conflicts.output.contains("[]"), "no empty answer")
        #expect(!FileManager.default.fileExists(atPath: work + "/demo-data"), "nothing was created")
        try FileManager.default.createDirectory(atPath: work + "/empty", withIntermediateDirectories: true)
        let empty = try await run("ktd", ["admin", "device", "add", "laptop", "--user", "anne", "--data", work + "/empty"], in: work, expect: 64)
        #expect(empty.error.contains("holds no Keukentafel store"), "\(empty.error)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work + "/empty").isEmpty)

        let badModel = try await run("ktd", ["admin", "init", "--data", work + "/store", "--schema", work + "/datamodl.yaml"], in: work, expect: 64)
        #expect(badModel.error.contains("datamodl.yaml") && badModel.error.contains("does not exist"), "\(badModel.error)")
        #expect(!FileManager.default.fileExists(atPath: work + "/store"))

        let made = try await run("ktd", ["admin", "init", "--data", work + "/store", "--schema", schema], in: work)
        #expect(made.output.contains("New store in"))
        let again = try await run("ktd", ["admin", "init", "--data", work + "/store"], in: work)
        #expect(again.output.contains("nothing changed"))
        let users = try await run("ktd", ["admin", "user", "list", "--data", work + "/store"], in: work)
        #expect(users.output.contains("(none)"), "a new store has no users yet: now an answer that is true")
    }

    @Test func pruneHistoryNeedsAPeriodAndSaysWhatItRemoved() async throws {
        let work = try temporaryDirectory("prune")
        let data = work + "/data"
        try await run("ktd", ["admin", "demo", "--data", data, "--schema", repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path], in: work)
        let none = try await run("ktd", ["admin", "prune-history", "--data", data], in: work, expect: 64)
        #expect(none.error.contains("--older-than 2y") && none.error.contains("history-retention"), "\(none.error)")
        let typo = try await run("ktd", ["admin", "prune-history", "--data", data, "--older-than", "2x"], in: work, expect: 64)
        #expect(typo.error.contains("'2x' is not a period"), "\(typo.error)")
        let short = try await run("ktd", ["admin", "prune-history", "--data", data, "--older-than", "1w"], in: work, expect: 64)
        #expect(short.error.contains("at least 30 days"), "\(short.error)")
        let missing = try await run("ktd", ["admin", "prune-history", "--data", work + "/nowhere", "--older-than", "2y"], in: work, expect: 64)
        #expect(missing.error.contains("does not exist"), "\(missing.error)")

        let dryRun = try await run("ktd", ["admin", "prune-history", "--data", data, "--older-than", "2y", "--dry-run"], in: work)
        #expect(dryRun.output.hasPrefix("Would remove 0 history entries (0 changes) received before "), "\(dryRun.output)")
        // The period from the configuration file; the demo's history is minutes old, so it all stays.
        try "history-retention = 30d\n".write(toFile: work + "/ktd.conf", atomically: true, encoding: .utf8)
        let pruned = try await run("ktd", ["admin", "prune-history", "--data", data, "--config", work + "/ktd.conf", "--json"], in: work)
        let report = try JSONDecoder().decode(HistoryPruneReport.self, from: Data(pruned.output.utf8))
        #expect(report.entries == 0 && !report.dryRun)
        let audit = try await run("ktd", ["admin", "audit", "--data", data], in: work)
        #expect(audit.output.contains("history.prune"), "\(audit.output)")
        let badConfig = "history-retention = soon\n"
        try badConfig.write(toFile: work + "/bad.conf", atomically: true, encoding: .utf8)
        let bad = try await run("ktd", ["admin", "prune-history", "--data", data, "--config", work + "/bad.conf"], in: work, expect: 64)
        #expect(bad.error.contains("'soon' is not a period"), "\(bad.error)")
    }

    @Test func theOfficeManagesUsersAuditsAndErasesFromTheCommandLine() async throws {
        let work = try temporaryDirectory("admin")
        let data = work + "/data"
        try await run("ktd", ["admin", "demo", "--data", data, "--schema", repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path], in: work)
        let users = try await run("ktd", ["admin", "user", "list", "--data", data], in: work)
        #expect(users.output.contains("fatima") && users.output.contains("team:castricum-noord"))
        let bad = try await run("ktd", ["admin", "scope", "add", "fatima", "wijk:noord", "--data", data], in: work, expect: 1)
        #expect(bad.error.contains("is not a scope") && bad.error.contains("team:<code>"), "\(bad.error)")
        let typo = try await run("ktd", ["admin", "scope", "add", "fatima", "team:castricum-nord", "--data", data], in: work, expect: 1)
        #expect(typo.error.contains("no row is in scope 'team:castricum-nord'") && typo.error.contains("team:castricum-noord")
                && typo.error.contains("--new"), "\(typo.error)")
        #expect(try await run("ktd", ["admin", "user", "list", "--data", data], in: work).output.contains("team:castricum-nord") == false)
        let newTeam = try await run("ktd", ["admin", "scope", "add", "ruud", "team:bergen-zuid", "--new", "--data", data], in: work)
        #expect(newTeam.output.contains("team:bergen-zuid"))
        let token = try token(try await run("ktd", ["admin", "device", "add", "laptop", "--user", "fatima", "--data", data, "--json"],
                                            in: work).output)
        let (server, url) = try await startServer(data: data, in: work)
        defer { server.terminate() }
        let initialised = try await run("kt", ["init", "--db", "laptop.sqlite", "--server", url, "--token", token], in: work)
        #expect(initialised.output.contains("Device of fatima (consultant; scopes: municipality:castricum team:castricum-noord)"))
        let upToDate = try await run("kt", ["upgrade", "--db", "laptop.sqlite"], in: work)
        #expect(upToDate.output.contains("already has the server's data model") && upToDate.output.contains("nothing to upgrade"))
        let forged = try await run("kt", ["init", "--db", "forged.sqlite", "--server", url, "--token", "kt_" + String(repeating: "A", count: 43)],
                                   in: work, expect: 2)
        #expect(forged.error.contains("401 unauthorized") && !forged.error.contains("Usage:"), "a refusal, not a usage error: \(forged.error)")
        try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work)

        // A visit on another team's case is refused, stays on the laptop, and kt status says why in one line.
        try await run("kt", ["sql", "--db", "laptop.sqlite",
                             "INSERT INTO visits (id, case_id, happened_at) VALUES ('\(newID())', 'c0000000-0000-4000-8000-000000000001', '2026-11-20T10:00:00Z')"],
                      in: work)
        try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work)
        let status = try await run("kt", ["status", "--db", "laptop.sqlite"], in: work)
        #expect(status.output.contains("2 refused by the server"), "only the two columns written are cells")
        #expect(status.output.contains("(case_id, happened_at) [out_of_scope]"), "\(status.output)")

        let resident = "a0000000-0000-4000-8000-000000000005"
        let audit = try await run("ktd", ["admin", "audit", "--resident", resident, "--data", data], in: work)
        #expect(audit.output.contains("10 rows") && audit.output.contains("Received by:"))
        #expect(audit.output.contains("fatima") && audit.output.contains("laptop"))
        let dryRun = try await run("ktd", ["admin", "erase", "resident", resident, "--data", data], in: work)
        #expect(dryRun.output.contains("Would erase 10 rows"))
        let erased = try await run("ktd", ["admin", "erase", "resident", resident, "--yes", "--data", data], in: work)
        #expect(erased.output.contains("Erased 10 rows"))
        let after = try await run("ktd", ["admin", "audit", "--resident", resident, "--data", data], in: work)
        #expect(after.output.contains("was erased at"))
        let actions = try await run("ktd", ["admin", "audit", "--data", data], in: work)
        for action in ["erase.resident", "device.add", "scope.add", "user.add"] { #expect(actions.output.contains(action)) }

        let purged = try await run("kt", ["sync", "--db", "laptop.sqlite", "--json"], in: work)
        #expect(purged.output.contains("\"rowsPurged\" : 10"), "\(purged.output)")
        let left = try await run("kt", ["sql", "--db", "laptop.sqlite", "SELECT count(*) FROM residents WHERE id = '\(resident)'"], in: work)
        #expect(left.output.contains("0"))
    }

    @Test func syncFailsWithAReasonAndExitCodeWhenTheServerIsGone() async throws {
        let work = try temporaryDirectory("offline")
        let data = work + "/data"
        try await run("ktd", ["admin", "init", "--data", data, "--schema", repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path],
                      in: work)
        try await run("ktd", ["admin", "user", "add", "fatima", "--role", "consultant", "--data", data], in: work)
        let token = try token(try await run("ktd", ["admin", "device", "add", "laptop", "--user", "fatima", "--data", data, "--json"],
                                            in: work).output)
        let (server, url) = try await startServer(data: data, in: work)
        try await run("kt", ["init", "--db", "laptop.sqlite", "--server", url, "--token", token], in: work)
        _ = try await onThread { server.terminate(); server.waitUntilExit(); return true }
        try await run("kt", ["sql", "--db", "laptop.sqlite", "INSERT INTO residents (id, last_name) VALUES ('\(newID())', 'Kowalski')"], in: work)
        let failed = try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work, expect: 2)
        #expect(failed.error.contains("sync failed: cannot reach"))
        let status = try await run("kt", ["status", "--db", "laptop.sqlite"], in: work)
        #expect(status.output.contains("1 waiting to be sent"), "one resident with one column set: one cell")
        #expect(status.output.contains("last error"))
    }

    @Test func aConfigurationFileIsReadAndCheckedAtStart() async throws {
        let work = try temporaryDirectory("config")
        let schema = repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path
        try "# test\ndata = \(work)/from-file\nschema = \(schema)\nmax-wait = 5\n".write(toFile: work + "/ktd.conf", atomically: true, encoding: .utf8)
        try await run("ktd", ["admin", "init", "--config", work + "/ktd.conf"], in: work)
        try await run("ktd", ["admin", "user", "add", "anne", "--role", "back-office", "--config", work + "/ktd.conf"], in: work)
        try await run("ktd", ["admin", "device", "add", "laptop", "--user", "anne", "--config", work + "/ktd.conf"], in: work)
        let listed = try await run("ktd", ["admin", "device", "list", "--data", work + "/from-file", "--json"], in: work)
        #expect(listed.output.contains("\"name\" : \"laptop\""), "the data directory came from the file")

        try "data = \(work)/x\nlisten 127.0.0.1:1\ncolour = blue\nmax-wait = soon\n".write(toFile: work + "/bad.conf", atomically: true, encoding: .utf8)
        let bad = try await run("ktd", ["serve", "--config", work + "/bad.conf"], in: work, expect: 64)
        #expect(bad.error.contains("line 2") && bad.error.contains("unknown key 'colour'") && bad.error.contains("max-wait"), "\(bad.error)")
    }

    @Test("kt init catches an empty token, a server without a scheme, a missing folder and an existing file itself")
    func ktInitCatchesWhatItCanSee() async throws {
        let work = try temporaryDirectory("init-checks")
        let nowhere = "http://127.0.0.1:1"
        for (arguments, says) in [
            (["--db", "a.sqlite", "--server", nowhere, "--token", ""], "--token is empty"),
            (["--db", "a.sqlite", "--server", nowhere, "--token", "kt_abc\n"], "line break"),
            (["--db", "a.sqlite", "--server", "127.0.0.1:8470", "--token", "kt_abc"], "with its scheme"),
            (["--db", "no/such/folder/a.sqlite", "--server", nowhere, "--token", "kt_abc"], "the folder 'no/such/folder' for --db does not exist"),
            (["--db", "taken.sqlite", "--server", nowhere, "--token", "kt_abc"], "exists already"),
        ] {
            try "".write(toFile: work + "/taken.sqlite", atomically: true, encoding: .utf8)
            let refused = try await run("kt", ["init"] + arguments, in: work, expect: 64)
            #expect(refused.error.contains(says), "\(arguments): \(refused.error)")
            #expect(!refused.error.contains("cannot reach"), "caught before asking the server")
        }
        let unreachable = try await run("kt", ["init", "--db", "a.sqlite", "--server", nowhere, "--token", "kt_abc"], in: work, expect: 2)
        #expect(unreachable.error.contains("cannot reach"), "valid input goes on to the server: \(unreachable.error)")
        #expect(!FileManager.default.fileExists(atPath: work + "/a.sqlite"))
    }

    @Test("ktd admin device lost wipes a laptop only when told --yes")
    func reportingADeviceLostNeedsConfirmation() async throws {
        let work = try temporaryDirectory("lost")
        let data = work + "/data"
        try await run("ktd", ["admin", "demo", "--data", data, "--schema", repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path], in: work)
        try await run("ktd", ["admin", "device", "add", "laptop", "--user", "fatima", "--data", data], in: work)
        let asked = try await run("ktd", ["admin", "device", "lost", "laptop", "--data", data], in: work, expect: 64)
        #expect(asked.error.contains("changes it never sent included") && asked.error.contains("--yes") && asked.error.contains("revoke"))
        let devices = try await run("ktd", ["admin", "device", "list", "--data", data, "--json"], in: work)
        #expect(!devices.output.contains("lostAt"), "nothing was changed: \(devices.output)")
        let lost = try await run("ktd", ["admin", "device", "lost", "laptop", "--yes", "--data", data], in: work)
        #expect(lost.output.contains("reported lost"))
    }

    @Test("kt sql runs every statement or none and keeps out of _kt_*; kt login gives a revoked laptop a new token and keeps its work")
    func ktSQLAndKTLogin() async throws {
        let work = try temporaryDirectory("login")
        let data = work + "/data"
        try await run("ktd", ["admin", "demo", "--data", data, "--schema", repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path], in: work)
        let first = try token(try await run("ktd", ["admin", "device", "add", "laptop", "--user", "fatima", "--data", data, "--json"], in: work).output)
        let (server, url) = try await startServer(data: data, in: work)
        defer { server.terminate() }
        try await run("kt", ["init", "--db", "laptop.sqlite", "--server", url, "--token", first], in: work)
        try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work)

        let two = try await run("kt", ["sql", "--db", "laptop.sqlite", "SELECT count(*) AS n FROM cases; SELECT 'second' AS s"], in: work)
        #expect(two.output.contains("n") && two.output.contains("second"), "both statements ran: \(two.output)")
        let outbox = try await run("kt", ["sql", "--db", "laptop.sqlite", "DELETE FROM _kt_outbox"], in: work, expect: 1)
        #expect(outbox.error.contains("bookkeeping"), "\(outbox.error)")
        let secret = try await run("kt", ["sql", "--db", "laptop.sqlite", "SELECT value FROM _kt_meta WHERE key = 'token'"], in: work, expect: 1)
        #expect(!secret.output.contains(first) && secret.error.contains("token"), "\(secret.error)")

        let caseID = try #require(try await run("kt", ["sql", "--db", "laptop.sqlite", "--json", "SELECT id FROM cases LIMIT 1"], in: work)
            .output.split(separator: "\"").dropFirst(3).first.map(String.init))
        let halfBad = "INSERT INTO notes (id, case_id, author, body) VALUES (kt_new_id(), '\(caseID)', 'Fatima', 'Goed gesprek'); "
            + "UPDATE cases SET status = 'no_such_status' WHERE id = '\(caseID)'"
        try await run("kt", ["sql", "--db", "laptop.sqlite", halfBad], in: work, expect: 1)
        let none = try await run("kt", ["sql", "--db", "laptop.sqlite", "--json", "SELECT count(*) AS n FROM notes WHERE body = 'Goed gesprek'"], in: work)
        #expect(none.output.contains("\"n\" : 0"), "the first statement was undone with the second: \(none.output)")
        try await run("kt", ["sql", "--db", "laptop.sqlite",
                             "INSERT INTO notes (id, case_id, author, body) VALUES (kt_new_id(), '\(caseID)', 'Fatima', 'Goed gesprek')"], in: work)

        try await run("ktd", ["admin", "device", "revoke", "laptop", "--data", data], in: work)
        try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work, expect: 2)
        let refused = try await run("kt", ["login", "--db", "laptop.sqlite", "--token", "kt_wrong"], in: work, expect: 2)
        #expect(refused.error.contains("unauthorized") || refused.error.contains("unknown"), "\(refused.error)")
        let second = try token(try await run("ktd", ["admin", "device", "add", "laptop 2", "--user", "fatima", "--data", data, "--json"], in: work).output)
        let login = try await run("kt", ["login", "--db", "laptop.sqlite", "--token", second], in: work)
        #expect(login.output.contains("unsent change") && login.output.contains("fatima"), "\(login.output)")
        let synced = try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work)
        #expect(synced.output.contains("0 rejected") && !synced.output.contains("pushed 0"), "\(synced.output)")

        // An erasure reaches the laptop, and kt sync says so in words.
        let resident = try #require(try await run("kt", ["sql", "--db", "laptop.sqlite", "--json", "SELECT resident_id FROM cases WHERE id = '\(caseID)'"],
                                                  in: work).output.split(separator: "\"").dropFirst(3).first.map(String.init))
        try await run("ktd", ["admin", "erase", "resident", resident, "--yes", "--data", data], in: work)
        let purged = try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work)
        #expect(purged.output.contains("of an erased person removed from this device"), "\(purged.output)")
    }

    @Test("kt attach, kt attachments list and get, ktd admin attachments: a photo from one laptop to another, as the README shows")
    func attachmentsFromTheCommandLine() async throws {
        let work = try temporaryDirectory("attach-cli")
        let data = work + "/data"
        try await run("ktd", ["admin", "demo", "--data", data, "--schema", repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path], in: work)
        let fatima = try token(try await run("ktd", ["admin", "device", "add", "laptop", "--user", "fatima", "--data", data, "--json"], in: work).output)
        let anne = try token(try await run("ktd", ["admin", "device", "add", "office", "--user", "anne", "--data", data, "--json"], in: work).output)
        let (server, url) = try await startServer(data: data, in: work)
        defer { server.terminate() }
        for (db, device) in [("fatima.sqlite", fatima), ("office.sqlite", anne)] {
            try await run("kt", ["init", "--db", db, "--server", url, "--token", device], in: work)
            try await run("kt", ["sync", "--db", db], in: work)
        }
        let photo = Data((0..<1_500_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try photo.write(to: URL(fileURLWithPath: work + "/brief.jpg"))
        let caseID = "c0000000-0000-4000-8000-000000000005", document = newID()

        let attached = try await run("kt", ["attach", "documents", document, "file", "brief.jpg", "--insert", "case_id=\(caseID)",
                                            "--insert", "kind=creditor_letter", "--db", "fatima.sqlite"], in: work)
        #expect(attached.output.contains("attached brief.jpg (image/jpeg, 1.4 MB"), "\(attached.output)")
        let wrong = try await run("kt", ["attach", "documents", document, "kind", "brief.jpg", "--db", "fatima.sqlite"], in: work, expect: 2)
        #expect(wrong.error.contains("not an attachment column") && wrong.error.contains("[not_an_attachment_column]"), "\(wrong.error)")
        let missingFile = try await run("kt", ["attach", "documents", document, "file", "gone.jpg", "--db", "fatima.sqlite"], in: work, expect: 2)
        #expect(missingFile.error.contains("no file at 'gone.jpg'"), "\(missingFile.error)")

        let pushed = try await run("kt", ["sync", "--db", "fatima.sqlite"], in: work)
        #expect(pushed.output.contains("uploaded 1 attachment(s), 1.4 MB") && pushed.output.contains("0 rejected"), "\(pushed.output)")
        try await run("kt", ["sync", "--db", "office.sqlite"], in: work)
        let listed = try await run("kt", ["attachments", "list", "--missing", "--db", "office.sqlite"], in: work)
        #expect(listed.output.contains("brief.jpg  image/jpeg  1.4 MB  not downloaded") && listed.output.contains("documents.file \(document)"),
                "\(listed.output)")
        let got = try await run("kt", ["attachments", "get", "documents", document, "file", "--out", "copy.jpg", "--db", "office.sqlite"], in: work)
        #expect(got.output.contains("copy.jpg"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: work + "/copy.jpg")) == photo)
        let again = try await run("kt", ["attachments", "get", "documents", document, "file", "--out", "copy.jpg", "--db", "office.sqlite"], in: work,
                                  expect: 64)
        #expect(again.error.contains("exists"), "\(again.error)")
        let none = try await run("kt", ["attachments", "list", "--missing", "--db", "office.sqlite"], in: work)
        #expect(none.output.contains("every attachment on this device has its content here"), "\(none.output)")

        let admin = try await run("ktd", ["admin", "attachments", "--data", data], in: work)
        #expect(admin.output.contains("1 attachment content(s), 1500000 bytes in all") && admin.output.contains("0 orphan(s)"), "\(admin.output)")
    }

    @Test("ktd admin backup: mode 0600, never over an existing file without --force, encrypted with --key-file; restore needs the key")
    func backupsFromTheCommandLine() async throws {
        let work = try temporaryDirectory("backup-cli")
        let data = work + "/data"
        try await run("ktd", ["admin", "demo", "--data", data, "--schema", repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path], in: work)
        try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: work + "/backup.key"))

        let plain = try await run("ktd", ["admin", "backup", "plain.sqlite", "--data", data], in: work)
        #expect(plain.output.contains("Backup written to plain.sqlite") && plain.output.contains("mode 0600"), "\(plain.output)")
        let again = try await run("ktd", ["admin", "backup", "plain.sqlite", "--data", data], in: work, expect: 1)
        #expect(again.error.contains("exists") && again.error.contains("--force"), "\(again.error)")
        try await run("ktd", ["admin", "backup", "plain.sqlite", "--force", "--data", data], in: work)

        let sealed = try await run("ktd", ["admin", "backup", "sealed.ktbackup", "--key-file", "backup.key", "--data", data], in: work)
        #expect(sealed.output.contains("Encrypted backup written"), "\(sealed.output)")
        let mode = try FileManager.default.attributesOfItem(atPath: work + "/sealed.ktbackup")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let noKey = try await run("ktd", ["admin", "restore", "sealed.ktbackup", "--yes", "--data", data], in: work, expect: 1)
        #expect(noKey.error.contains("encrypted backup") && noKey.error.contains("--key-file"), "\(noKey.error)")
        let badKey = try await run("ktd", ["admin", "backup", "x.ktbackup", "--key-file", "missing.key", "--data", data], in: work, expect: 1)
        #expect(badKey.error.contains("no backup key file at 'missing.key'"), "\(badKey.error)")
        let restored = try await run("ktd", ["admin", "restore", "sealed.ktbackup", "--key-file", "backup.key", "--yes", "--data", data], in: work)
        #expect(restored.output.contains("Store restored from sealed.ktbackup"), "\(restored.output)")
    }

    @Test("ktd logs a line per request (who, route, status, time, cells, why refused); a flood of bad tokens is refused and logged once")
    func ktdLogsEveryRequest() async throws {
        let work = try temporaryDirectory("logs")
        let schema = repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path
        try await run("ktd", ["admin", "demo", "--data", "data", "--schema", schema], in: work)
        // A name with a quote, a tab, a backslash and a non-ASCII letter: the log line must still be one JSON object.
        let deviceName = "laptop \"Fátima\"\t\\ 2"
        let token = try token(try await run("ktd", ["admin", "device", "add", deviceName, "--user", "fatima", "--data", "data", "--json"], in: work).output)
        let ktd = Process()
        ktd.executableURL = Self.binDirectory.appendingPathComponent("ktd")
        ktd.arguments = ["serve", "--data", "data", "--schema", schema, "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--stop-with-parent"]
        ktd.currentDirectoryURL = URL(fileURLWithPath: work)
        let out = Pipe(), err = Pipe()
        ktd.standardOutput = out
        ktd.standardError = err
        try ktd.run()
        defer { if ktd.isRunning { ktd.terminate() } }
        let listening = try await onThread { () -> String in
            var text = ""
            while !(text.contains("ktd listening on ") && text.hasSuffix("\n")) {
                let chunk = out.fileHandleForReading.availableData  // blocks: on a thread of its own
                if chunk.isEmpty { throw TestFailure("ktd ended before it listened: \(text)") }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return text
        }
        let line = try #require(listening.split(separator: "\n").first { $0.contains("ktd listening on ") })
        let url = try #require(line.split(separator: " ").last.map(String.init))

        try await run("kt", ["init", "--db", "laptop.sqlite", "--server", url, "--token", token], in: work)
        try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work)
        let guessing = CurlTransport(baseURL: url, token: "kt_guessed")
        let statuses = try await onThread { try (0..<22).map { _ in try guessing.send(method: "GET", path: "/v1/hello", query: [], body: nil).status } }
        #expect(statuses == Array(repeating: 401, count: 20) + [429, 429], "\(statuses)")
        try await run("kt", ["sync", "--db", "laptop.sqlite"], in: work)  // a valid token from the same address still gets in

        let log = try await onThread { () -> String in
            ktd.terminate()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            ktd.waitUntilExit()
            return text
        }
        let lines = log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        #expect(lines.count == log.split(separator: "\n").count, "every line is a JSON object")
        let stamp = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/
        #expect(lines.allSatisfy { ($0["time"] ?? "").wholeMatch(of: stamp) != nil }, "UTC with milliseconds: \(lines.first?["time"] ?? "")")
        let pull = lines.first { $0["message"] == "request" && $0["route"] == "GET /v1/pull" }
        #expect(pull?["status"] == "200" && pull?["device"] == deviceName && pull?["user"] == "fatima", "\(pull ?? [:])")
        #expect(Int(pull?["cells"] ?? "") ?? 0 > 0 && pull?["ms"] != nil && pull?["address"] == "127.0.0.1", "\(pull ?? [:])")
        let refused = lines.filter { $0["route"] == "GET /v1/hello" && $0["status"] == "401" }
        #expect(refused.count == 20 && refused.allSatisfy { $0["refused"] == "unauthorized" && $0["device"] == nil })
        #expect(lines.filter { $0["message"]?.hasPrefix("too many failed authentications") == true }.count == 1, "the flood is logged once")
        #expect(lines.contains { $0["message"] == "ktd listening" } && lines.contains { $0["message"] == "ktd stopped" }, "start and stop")
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let started = lines.first { $0["message"] == "ktd listening" }
        #expect(started?["open_files"] == String(limit.rlim_max), "ktd raised its open-file limit to the hard limit: \(started ?? [:])")
    }

    @Test("a second ktd serve on one SQLite data directory is refused, naming the first; a port in use is said in words")
    func oneServerPerDataDirectory() async throws {
        let work = try temporaryDirectory("lock")
        let schema = repositoryRoot.appendingPathComponent("Schemas/datamodel.yaml").path
        try await run("ktd", ["admin", "init", "--data", "data", "--schema", schema], in: work)
        let (first, url) = try await startServer(data: "data", in: work)
        defer { first.terminate() }

        let second = try await run("ktd", ["serve", "--data", "data", "--schema", schema, "--listen", "127.0.0.1:0"], in: work, expect: 1)
        #expect(second.error.contains("another ktd already serves data (process \(first.processIdentifier))"), "\(second.error)")
        #expect(!second.error.contains("Usage:"), "not a usage mistake")

        // Another data directory, the first server's port: the address is in use.
        let port = try #require(url.split(separator: ":").last.map(String.init))
        try await run("ktd", ["admin", "init", "--data", "other", "--schema", schema], in: work)
        let clash = try await run("ktd", ["serve", "--data", "other", "--schema", schema, "--listen", "127.0.0.1:\(port)"], in: work, expect: 1)
        #expect(clash.error.contains("cannot listen on 127.0.0.1:\(port): the address is in use"), "\(clash.error)")
        #expect(!clash.error.contains("errno"), "no library text: \(clash.error)")

        // Once the first has stopped, the directory is free again.
        try await onThread {
            first.terminate()
            first.waitUntilExit()
        }
        let (again, _) = try await startServer(data: "data", in: work)
        again.terminate()
    }

    @Test("ktd started from PATH, in a folder without the repository, finds the data model beside its executable")
    func ktdFromPathFindsItsModel() async throws {
        let work = try temporaryDirectory("from-path")
        let result = try await onThread { try Self.runBlocking("ktd", ["admin", "init", "--data", "data"], in: work, fromPath: true) }
        #expect(result.status == 0, "\(result.output) \(result.error)")
        #expect(FileManager.default.fileExists(atPath: work + "/data/datamodel.yaml"), "the model found was copied into the store")
    }

    @Test func everyCommandExplainsItself() async throws {
        let work = try temporaryDirectory("help")
        for (tool, command) in [("ktd", ["serve"]), ("ktd", ["admin", "device", "add"]), ("ktd", ["admin", "conflicts", "list"]),
                                ("ktd", ["admin", "user", "add"]), ("ktd", ["admin", "scope", "add"]), ("ktd", ["admin", "device", "lost"]),
                                ("ktd", ["admin", "audit"]), ("ktd", ["admin", "erase"]),
                                ("ktd", ["admin", "demo"]), ("kt", ["init"]), ("kt", ["sql"]), ("kt", ["sync"]), ("kt", ["status"]),
                                ("kt", ["conflicts", "show"]), ("kt", ["due"]), ("kt", ["upgrade"]), ("kt", ["login"])] {
            let help = try await run(tool, command + ["--help"], in: work)
            #expect(help.output.contains("USAGE:"))
            #expect(help.output.contains("--json") || command == ["serve"])
        }
    }
}
