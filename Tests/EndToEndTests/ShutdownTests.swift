import Foundation
import KeukentafelProcesses
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import KeukentafelSQLite
import Testing

/// The real `ktd` as a child process, stopped with SIGTERM in the middle of a push: every batch is
/// applied fully or not at all, and the client completes the push after a restart.
@Suite struct ShutdownTests {
    /// Forwards to libcurl; on the n-th push it sends SIGTERM to the server as the request goes out.
    final class TerminatingTransport: SyncTransport, @unchecked Sendable {
        let inner: CurlTransport
        let server: SpawnedProcess
        let onPush: Int
        private let counter = Counter()

        init(inner: CurlTransport, server: SpawnedProcess, onPush: Int) {
            self.inner = inner
            self.server = server
            self.onPush = onPush
        }

        func send(method: String, path: String, query: [(String, String)], body: Data?, headers: [String]) throws -> HTTPExchange {
            if path == "/v1/push", counter.increment() == onPush {
                let pid = server.processIdentifier
                DispatchQueue.global().async { kill(pid, SIGTERM) }
            }
            return try inner.send(method: method, path: path, query: query, body: body, headers: headers)
        }
    }

    @Test func sigtermDuringAPushLeavesBatchesWholeAndTheClientCompletes() async throws {
        let work = try temporaryDirectory("sigterm")
        let data = work + "/data"
        let model = try shippedDataModel()
        let store = try ServerStore(directory: data, dataModel: model)  // create the store and a device, then let ktd own it
        try store.accounts.ensureUser("office", role: .backOffice, scopes: ["*"])
        let token = try store.accounts.addDevice(name: "laptop", user: "office").token
        let (first, url) = try await CommandLineTests().startServer(data: data, in: work)
        let port = Int(url.split(separator: ":").last!)!

        let laptop = try Replica.create(path: work + "/laptop.sqlite", dataModel: model, serverURL: url, token: token)
        try laptop.transaction { for i in 0..<1_000 { _ = try seedCase(on: laptop, name: "Inwoner \(i)") } }  // 6,000 cells: six batches
        let total = try laptop.outbox().count
        let engine = SyncEngine(replica: laptop, transport: TerminatingTransport(inner: CurlTransport(baseURL: url, token: token),
                                                                              server: first, onPush: 3))
        engine.pushBatchSize = 1_000
        await #expect(throws: SyncError.self) { _ = try await onThread { try engine.push() } }
        let exit = try await onThread { first.waitUntilExit(); return first.terminationStatus }
        #expect(exit == 0, "SIGTERM is a graceful shutdown")

        // Whatever got in, got in whole: the server's accepted changes are whole batches.
        let afterCrash = try ServerStore(directory: data, dataModel: model).inspection.counts()["changes"] ?? -1
        #expect(afterCrash % 1_000 == 0 && afterCrash >= 2_000, "batches of 1,000 applied whole: \(afterCrash)")
        let waiting = try laptop.outbox().count
        #expect(waiting == total - Int(afterCrash) || waiting == total - Int(afterCrash) + 1_000,
                "acknowledged batches left the outbox; a batch whose answer was lost stays and is retried")

        let (second, _) = try await CommandLineTests().startServer(data: data, in: work, port: port)
        defer { second.terminate() }
        let report = try await laptop.sync()
        #expect(try laptop.outbox().isEmpty)
        let serverStore = try ServerStore(directory: data, dataModel: model)
        #expect(try serverStore.inspection.counts()["changes"] == Int64(total), "every change exactly once: \(report.pushed)")
        #expect(try serverStore.inspection.counts()["cells"] == Int64(total))
        let check = try await onThread { () -> Bool in
            let db = try KeukentafelSQLiteCheck.integrity(path: data + "/" + ServerStore.fileName)
            return db
        }
        #expect(check)
    }
}

/// `PRAGMA integrity_check` on a file.
enum KeukentafelSQLiteCheck {
    static func integrity(path: String) throws -> Bool {
        let connection = try SQLiteConnection(path: path, readOnly: true)
        return try connection.query("PRAGMA integrity_check").first?.first == .text("ok")
    }
}
