import Foundation
import KeukentafelProtocol
@testable import KeukentafelServer
import KeukentafelSQLite
import KeukentafelTesting
import Testing

/// A store notes the layout it was left in (`meta.layout`); a release older than the store refuses it in
/// words, before touching it, instead of failing on a column it does not know.
@Suite struct StoreLayoutVersionTests {
    @Test("a store moved by a newer release is refused with what to do, and left as it was",
          arguments: [StoreDialect.sqlite, .postgresql])
    func newerLayoutIsRefused(dialect: StoreDialect) async throws {
        let model = try shippedDataModel()
        let open = try await ColumnNumberTests.opener(dialect, "layout-version")
        let store = try await onThread { try open(model) }
        #expect(try store.reader.withConnection { try $0.scalar("SELECT value FROM meta WHERE key = 'layout'") } == .integer(StoreSchema.layout))
        // As a release after this one would leave it.
        try store.writer.withLock { try $0.setMeta("layout", .integer(StoreSchema.layout + 1)) }
        await #expect {
            _ = try await onThread { try open(model) }
        } throws: { error in
            "\(error)".contains("a newer ktd moved this store to layout \(StoreSchema.layout + 1)") && "\(error)".contains("ktd admin restore")
        }
        #expect(try store.reader.withConnection { try $0.scalar("SELECT value FROM meta WHERE key = 'layout'") } == .integer(StoreSchema.layout + 1),
                "the refusing open changed nothing")
    }

    @Test("a backup of a store in a newer layout is not restored")
    func newerBackupIsNotRestored() throws {
        let model = try shippedDataModel()
        let store = try ServerStore(directory: try temporaryDirectory("layout-backup"), dataModel: model)
        let backup = try temporaryDirectory("layout-backup-file") + "/backup.sqlite"
        try store.backups.backup(to: backup)
        try SQLiteConnection(path: backup).run("UPDATE meta SET value = ? WHERE key = 'layout'", [.integer(StoreSchema.layout + 1)])
        let epoch = try store.reader.withConnection { try $0.scalar("SELECT value FROM meta WHERE key = 'epoch'") }
        #expect {
            _ = try store.backups.restore(from: backup, actor: "test")
        } throws: { error in
            "\(error)".contains("made by a newer ktd") && "\(error)".contains("nothing was restored")
        }
        #expect(try store.reader.withConnection { try $0.scalar("SELECT value FROM meta WHERE key = 'epoch'") } == epoch, "nothing was restored")
    }
}
