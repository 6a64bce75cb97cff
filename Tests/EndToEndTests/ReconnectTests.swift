import Foundation
import KeukentafelProtocol
@testable import KeukentafelClient
import KeukentafelServer
import KeukentafelTesting
import Testing

/// A replica given a new token or server address (issue 18: `Replica.reconnect`, `kt login`) keeps
/// its unsent work, and the server lets the new device take over the replica only once the old one
/// is revoked.
@Suite struct ReconnectTests {
    static let team = "castricum-noord"

    @Test("a revoked laptop given a new token keeps and pushes its unsent changes")
    func aNewTokenKeepsTheUnsentWork() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop 1", user: "fatima", role: .consultant, scopes: ["team:\(Self.team)"])
        let (_, caseID) = try seedCase(on: laptop, team: Self.team)
        try await laptop.sync()   // binds the replica to device "laptop 1"

        // Offline at the kitchen table; meanwhile the office revokes the device.
        let note = newID()
        try await laptop.execute("INSERT INTO notes (id, case_id, author, body) VALUES (?, ?, 'Fatima', 'Keukentafelgesprek gehad.')",
                           [.text(note), .text(caseID)])
        _ = try server.store.accounts.revokeDevice("laptop 1", actor: "test")
        await #expect { try await laptop.sync() } throws: { error in
            guard case SyncError.server(401, "token_revoked", _) = error else { return false }
            return true
        }
        let waiting = try laptop.outboxCounts().pending
        #expect(waiting > 0)

        // A token the server refuses changes nothing.
        await #expect { try await onThread { try laptop.reconnect(token: "kt_not_a_token") } } throws: { error in
            guard case SyncError.server(401, _, _) = error else { return false }
            return true
        }
        #expect(try laptop.identity == nil && laptop.outboxCounts().pending == waiting)

        let token = try server.token("laptop 2", user: "fatima", role: .consultant, scopes: ["team:\(Self.team)"])
        let report = try await onThread { try laptop.reconnect(token: token) }
        #expect(report.changesKept == waiting && report.downloadsAgain)
        #expect(report.identity.user == "fatima" && report.identity.scopes == ["team:\(Self.team)"])
        #expect(try laptop.identity == report.identity)

        let synced = try await laptop.sync()
        #expect(synced.pushed.applied == waiting && synced.pushed.rejected == 0)
        #expect(try laptop.outboxCounts().pending == 0)
        let history = try server.store.history(table: "notes", row: note, column: "body")
        #expect(history.map(\.deviceName) == ["laptop 2"], "the note was written as the new device")
        #expect(try server.store.audit.entries().contains { $0.action == "device.takeover" && $0.detail?.contains("laptop 1") == true })
        #expect(try laptop.value("cases", caseID, "team") == .text(Self.team), "the download again kept the data")
    }

    @Test("a token of another user makes the next sync drop what that user may not see, but not unsent rows")
    func anotherUsersTokenNarrowsTheReplica() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let desk = try server.replica("office desk")
        let (_, ours) = try seedCase(on: desk, team: Self.team)
        let (_, theirs) = try seedCase(on: desk, name: "Meneer Bakker", team: "castricum-zuid")
        try await desk.sync()
        let (_, unsent) = try seedCase(on: desk, name: "Mevrouw Visser", team: Self.team)

        _ = try server.store.accounts.revokeDevice("office desk", actor: "test")
        let token = try server.token("laptop sanne", user: "sanne", role: .consultant, scopes: ["team:\(Self.team)"])
        _ = try await onThread { try desk.reconnect(token: token) }
        let report = try await desk.sync()
        #expect(report.pushed.rejected == 0)
        #expect(try desk.value("cases", ours, "team") == .text(Self.team))
        #expect(try desk.value("cases", unsent, "team") == .text(Self.team), "her own new case was pushed and stays")
        #expect(try desk.value("cases", theirs, "team") == nil, "another team's case left the laptop")
    }

    @Test("while the old device still works, the server refuses the new one the replica, and says how to go on")
    func anActiveOldDeviceKeepsItsReplica() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let laptop = try server.replica("laptop 1")
        _ = try seedCase(on: laptop)
        try await laptop.sync()
        _ = try seedCase(on: laptop)
        let token = try server.token("laptop 2")
        _ = try await onThread { try laptop.reconnect(token: token) }
        await #expect { try await laptop.sync() } throws: { error in
            guard case SyncError.server(409, "node_mismatch", let message) = error else { return false }
            return message.contains("ktd admin device revoke laptop 1")
        }
        #expect(try laptop.outboxCounts().pending > 0, "the change waits")
    }

    @Test("a server with an older data model is not this replica's server")
    func anOlderModelIsTheWrongServer() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        var older = try shippedDataModel()
        older.version -= 1
        let other = try await TestServer.start(dataModel: older)
        defer { Task { await other.stop() } }
        let laptop = try server.replica("laptop")
        let url = other.url, token = try other.token("laptop")
        await #expect { try await onThread { try laptop.reconnect(serverURL: url, token: token) } } throws: { error in
            guard case ReplicaError.wrongServer(let why) = error else { return false }
            return why.contains("Nothing was changed")
        }
        #expect(try laptop.serverURL == server.url)
    }
}
