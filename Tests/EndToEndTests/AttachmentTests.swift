import Crypto
import Foundation
@testable import KeukentafelClient
import KeukentafelProtocol
import KeukentafelServer
import KeukentafelTesting
import Testing

/// Attachments (issue 20, decision 0026) end to end: a real server, real replicas through libcurl,
/// real files. Photos are random bytes around a marker text, so a search of every file can tell
/// whether any byte of one is left.
@Suite struct AttachmentTests {
    static let deVries = AccessTests.deVries, deVriesCase = AccessTests.deVriesCase

    /// A "photo" of `size` bytes: random, with `marker` in its middle; written to a file of its own.
    func photo(_ marker: String, size: Int = 3 * 1024 * 1024 + 12_345) throws -> (path: String, bytes: Data) {
        // From the kernel in one read: a byte at a time in a debug build took seconds per photo.
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        defer { try? random.close() }
        var bytes = try #require(try random.read(upToCount: size))
        bytes.replaceSubrange(size / 2..<(size / 2 + marker.utf8.count), with: Data(marker.utf8))
        // The marker is not in the file name: it must be found only where the bytes are.
        let path = try temporaryDirectory("photo") + "/IMG_\(Int.random(in: 1000...9999)).jpg"
        try bytes.write(to: URL(fileURLWithPath: path))
        return (path, bytes)
    }

    func sha256(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    /// One raw chunk of an upload, as a client sends it: `chunk` from `offset` of content `sha` of `size`
    /// bytes, with the chunk's own SHA-256 (or `digest` instead, to send a wrong one).
    static func put(_ url: String, token: String, _ chunk: Data, at offset: Int, size: Int, sha: String,
                    digest: String? = nil) throws -> HTTPExchange {
        let own = SHA256.hash(data: chunk).map { String(format: "%02x", $0) }.joined()
        return try CurlTransport(baseURL: url, token: token).send(
            method: "PUT", path: "/v1/attachments/\(sha)", query: [("offset", String(offset)), ("size", String(size))], body: chunk,
            headers: ["Keukentafel-Chunk-SHA256: \(digest ?? own)"])
    }

    /// Every file under these directories (recursively) and the replicas with their companions.
    func everyFile(under directories: [String], replicas: [Replica]) -> [String] {
        var found: [String] = []
        for directory in directories + replicas.map(\.attachmentsDirectory) {
            guard let walker = FileManager.default.enumerator(atPath: directory) else { continue }
            while let entry = walker.nextObject() as? String {
                var isDirectory: ObjCBool = false
                let path = directory + "/" + entry
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue { found.append(path) }
            }
        }
        for replica in replicas {
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: replica.path + suffix) { found.append(replica.path + suffix) }
        }
        return found
    }

    func filesContaining(_ marker: String, in paths: [String]) throws -> [String] {
        try paths.filter { try Data(contentsOf: URL(fileURLWithPath: $0)).range(of: Data(marker.utf8)) != nil }
    }

    /// Inserts a document of De Vries's case with `file` attached, as an app does.
    @discardableResult
    func addDocument(_ replica: Replica, file: String, kind: String = "creditor_letter") throws -> (row: String, reference: AttachmentReference) {
        let reference = try replica.importAttachment(file: file, table: "documents", column: "file")
        let row = newID()
        try replica.execute("INSERT INTO documents (id, case_id, kind, file) VALUES (?, ?, ?, ?)",
                            [.text(row), .text(Self.deVriesCase), .text(kind), reference.cellValue])
        return (row, reference)
    }

    @Test func aPhotoAttachedOfflineReachesADeviceInTheSameScopeAndNoOther() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let colleague = try server.replica("laptop ilse", user: "ilse", role: .consultant, scopes: ["team:castricum-noord"])
        let heiloo = try server.replica("laptop heiloo", user: "mark", role: .consultant, scopes: ["team:heiloo"])
        for replica in [fatima, colleague, heiloo] { try await replica.sync() }

        // At the kitchen table, offline: a creditor's letter photographed, and the signed plan scanned.
        let letter = try photo("brief-deurwaarder")
        let (document, reference) = try addDocument(fatima, file: letter.path)
        #expect(reference.size == Int64(letter.bytes.count) && reference.sha256 == sha256(letter.bytes) && reference.mediaType == "image/jpeg")
        let plan = newID()
        try await fatima.execute("INSERT INTO plans (id, case_id, plan_type, status) VALUES (?, ?, 'ondersteuningsplan', 'signed')",
                           [.text(plan), .text(Self.deVriesCase)])
        let scan = try photo("handtekening-plan", size: 700_000)
        try fatima.attach(file: scan.path, table: "plans", row: plan, column: "signed_document", mediaType: "application/pdf", name: "plan.pdf")
        #expect(try fatima.attachments().allSatisfy { $0.waitingForUpload && $0.file != nil })

        let pushed = try await fatima.sync()
        #expect(pushed.attachmentsUploaded == 2)
        #expect(pushed.attachmentBytesUploaded == Int64(letter.bytes.count + scan.bytes.count))
        #expect(pushed.pushed.rejected == 0 && pushed.stillRejected == 0)
        #expect(try fatima.attachments().allSatisfy { !$0.waitingForUpload })

        // The colleague of the same team: the signed plan (eager) comes with the sync, the letter when opened.
        let received = try await colleague.sync()
        #expect(received.attachmentsDownloaded == 1)
        #expect(try colleague.attachments(missingOnly: true).map(\.reference) == [reference])
        let planFile = try #require(try colleague.attachments().first { $0.reference.name == "plan.pdf" }?.file)
        #expect(try Data(contentsOf: URL(fileURLWithPath: planFile)) == scan.bytes)
        let engine = try SyncEngine(replica: colleague)
        let seen = Counter()
        let opened = try await engine.openAttachment(table: "documents", row: document, column: "file") { _, _ in _ = seen.increment() }
        #expect(try Data(contentsOf: URL(fileURLWithPath: opened)) == letter.bytes)
        #expect(seen.current >= 2, "progress was reported")
        #expect(try colleague.attachments(missingOnly: true).isEmpty)

        // Another team's device gets neither the row nor the bytes, even when it asks by hash.
        try await heiloo.sync()
        #expect(try heiloo.rowCount("documents") == 0)
        let heilooToken = try heiloo.tokenForCommands
        let asked = try await onThread {
            try CurlTransport(baseURL: server.url, token: heilooToken).send(method: "GET", path: "/v1/attachments/\(reference.sha256)", query: [], body: nil)
        }
        #expect(asked.status == 404)
        #expect(asked.body.range(of: Data("brief-deurwaarder".utf8)) == nil)
        let probe = try await onThread {
            try CurlTransport(baseURL: server.url, token: heilooToken).send(method: "GET", path: "/v1/attachments/\(reference.sha256)/upload",
                                                                             query: [("size", String(reference.size))], body: nil)
        }
        let status = try JSONDecoder().decode(AttachmentUpload.self, from: probe.body)
        #expect(status.received == 0 && !status.complete, "asking cannot tell whether the server holds some content")
        await server.stop()
    }

    @Test func aLongRunningEngineFetchesEagerAttachmentsWhenRowsChange() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office")
        try await fatima.sync()
        let engine = try SyncEngine(replica: office)
        let first = try await engine.sync()
        #expect(first.attachmentsDownloaded == 0)
        let idle = try await engine.sync()
        #expect(idle.pulled.cellsApplied == 0 && idle.attachmentsDownloaded == 0 && idle.attachmentsRemoved == 0)

        let plan = newID()
        try await fatima.execute("INSERT INTO plans (id, case_id, status) VALUES (?, ?, 'signed')", [.text(plan), .text(Self.deVriesCase)])
        let scan = try photo("lang-lopende-app", size: 200_000)
        try fatima.attach(file: scan.path, table: "plans", row: plan, column: "signed_document")
        try await fatima.sync()
        let changed = try await engine.sync()
        #expect(changed.attachmentsDownloaded == 1, "the same engine fetches the new signed plan")
        #expect(try office.attachments(missingOnly: true).isEmpty)
        await server.stop()
    }

    @Test func aCellReferringToContentTheServerLacksIsRefusedKeptAndSentAgainOnceUploaded() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        try await fatima.sync()
        let letter = try photo("aanmaning", size: 200_000)
        let reference = AttachmentReference(sha256: sha256(letter.bytes), size: Int64(letter.bytes.count), mediaType: "image/jpeg",
                                            name: (letter.path as NSString).lastPathComponent)
        // A reference written with plain SQL, its content nowhere on the device.
        let row = newID()
        try await fatima.execute("INSERT INTO documents (id, case_id, kind, file) VALUES (?, ?, 'photo', ?)",
                           [.text(row), .text(Self.deVriesCase), reference.cellValue])
        let refused = try await fatima.sync()
        #expect(refused.attachmentsUploaded == 0)
        let rejected = try fatima.outbox().filter { $0.state == "rejected" }
        #expect(rejected.count == 1 && rejected.first?.code == "attachment_missing" && rejected.first?.change.column == "file")
        #expect(try server.store.inspection.cell(table: "documents", row: row, column: "file") == nil)
        #expect(try fatima.rowCount("documents") == 1, "the refused row stays visible on the device")

        // The file turns up: imported, it is uploaded and the refused change goes out again.
        #expect(try fatima.importAttachment(file: letter.path, table: "documents", column: "file") == reference)
        let sent = try await fatima.sync()
        #expect(sent.attachmentsUploaded == 1 && sent.attachmentChangesRequeued == 1)
        #expect(sent.stillRejected == 0)
        #expect(try fatima.outbox().isEmpty)
        #expect(try server.store.inspection.cell(table: "documents", row: row, column: "file")?.value == reference.cellValue)

        // Validation: a type the column does not allow, and a plain text, are refused on the device at once.
        let text = try temporaryDirectory("text") + "/notes.txt"
        try Data("geen foto".utf8).write(to: URL(fileURLWithPath: text))
        #expect(throws: AttachmentError.self) { try fatima.importAttachment(file: text, table: "documents", column: "file") }
        await #expect(throws: (any Error).self) {
            try await fatima.execute("UPDATE documents SET file = 'brief.jpg' WHERE id = ?", [.text(row)])
        }
        #expect(throws: AttachmentError.self) { try fatima.attach(file: "/no/such/file.jpg", table: "documents", row: row, column: "file") }
        #expect(throws: AttachmentError.self) { try fatima.attach(file: letter.path, table: "documents", row: row, column: "kind") }
        await server.stop()
    }

    @Test func anUploadKilledHalfwayResumesWithoutSendingTheFirstPartAgain() async throws {
        let server = try await AccessTests.start()
        let proxy = try FaultProxy(upstreamPort: server.port)
        defer { proxy.stop() }
        let work = try temporaryDirectory("resume")
        let token = try server.token("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let db = work + "/laptop.sqlite"
        let replica = try Replica.create(path: db, dataModel: server.store.dataModel, serverURL: "http://127.0.0.1:\(proxy.port)", token: token)
        try await replica.sync()
        let letter = try photo("schuldbrief-kill", size: 3 * 1024 * 1024 + 500)
        let (row, reference) = try addDocument(replica, file: letter.path)

        // kt sync uploads in chunks of 1 MiB: the status question and two chunks pass, the third stalls,
        // and the process is killed -9 while it waits.
        proxy.fault(.stall, afterPassing: 3)
        let before = proxy.requests
        let kt = Process()
        kt.executableURL = CommandLineTests.binDirectory.appendingPathComponent("kt")
        kt.arguments = ["sync", "--db", db]
        kt.standardOutput = FileHandle.nullDevice
        kt.standardError = FileHandle.nullDevice
        try kt.run()
        try await waitUntil("the third chunk reached the proxy") { proxy.requests >= before + 4 }
        kill(kt.processIdentifier, SIGKILL)
        kt.waitUntilExit()
        #expect(kt.terminationReason == .uncaughtSignal)
        let held = try #require(try server.store.attachments.unfinishedUploads().first)
        #expect(held.received == 2 * 1024 * 1024, "two chunks arrived before the kill")

        // The connection cut by the proxy in the middle of the next chunk: that sync fails…
        proxy.fault(.resetRequestMidBody, afterPassing: 1)
        await #expect(throws: (any Error).self) { try await replica.sync() }
        proxy.fault = .none
        // …and the next one sends only what the server lacks.
        let resumed = try await replica.sync()
        #expect(resumed.attachmentsUploaded == 1)
        #expect(resumed.attachmentBytesUploaded == reference.size - 2 * 1024 * 1024)
        #expect(try server.store.attachments.unfinishedUploads().isEmpty)
        #expect(try server.store.inspection.cell(table: "documents", row: row, column: "file")?.value == reference.cellValue)
        let office = try server.replica("office")
        try await office.sync()
        let file = try await SyncEngine(replica: office).openAttachment(table: "documents", row: row, column: "file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == letter.bytes)
        await server.stop()
    }

    @Test func aDownloadCutHalfwayResumesAndADamagedPartIsCaught() async throws {
        let server = try await AccessTests.start()
        let proxy = try FaultProxy(upstreamPort: server.port)
        defer { proxy.stop() }
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        try await fatima.sync()
        let letter = try photo("half-download", size: 1_300_000)
        let (row, reference) = try addDocument(fatima, file: letter.path)
        try await fatima.sync()

        let office = try server.replica("office")
        try await office.sync()
        let engine = SyncEngine(replica: office, transport: CurlTransport(baseURL: "http://127.0.0.1:\(proxy.port)", token: try office.tokenForCommands))
        engine.attachmentChunkBytes = 100_000  // ranges of 400,000 bytes
        let part = office.attachmentsDirectory + "/\(reference.sha256).part"
        proxy.fault(.resetResponseMidBody, afterPassing: 1)
        await #expect(throws: (any Error).self) { try await engine.openAttachment(table: "documents", row: row, column: "file") }
        proxy.fault = .none
        #expect(try Data(contentsOf: URL(fileURLWithPath: part)) == letter.bytes.prefix(400_000), "the first range is kept")

        let requests = proxy.requests
        let file = try await engine.openAttachment(table: "documents", row: row, column: "file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == letter.bytes)
        #expect(proxy.requests - requests == 3, "only the three ranges it lacked were asked for")
        #expect(!FileManager.default.fileExists(atPath: part))

        // A part damaged on the disk meanwhile: the whole is checked, refused, and the next try starts over.
        try FileManager.default.removeItem(atPath: file)
        var damaged = Data(letter.bytes.prefix(400_000))
        damaged[10] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: part))
        do {
            _ = try await engine.openAttachment(table: "documents", row: row, column: "file")
            Issue.record("a damaged part was accepted")
        } catch let error as AttachmentError {
            #expect(error.code == "digest_mismatch")
        }
        #expect(!FileManager.default.fileExists(atPath: part))
        let again = try await engine.openAttachment(table: "documents", row: row, column: "file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: again)) == letter.bytes)
        await server.stop()
    }

    @Test func aCorruptedChunkOrContentIsRefusedAndNothingOfItKept() async throws {
        let server = try await AccessTests.start()
        let token = try server.token("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let content = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let sha = sha256(content)
        let count = content.count, url = server.url
        @Sendable func put(_ chunk: Data, at offset: Int, digest: String, sha: String) throws -> HTTPExchange {
            try Self.put(url, token: token, chunk, at: offset, size: count, sha: sha, digest: digest)
        }
        let first = content.prefix(100_000)
        var damagedCopy = Data(first)
        damagedCopy[5_000] ^= 0xFF
        let damaged = damagedCopy
        let refused = try await onThread { try put(damaged, at: 0, digest: sha256(Data(first)), sha: sha) }
        #expect(refused.status == 422)
        #expect(try JSONDecoder().decode(ErrorResponse.self, from: refused.body).error.code == .digestMismatch)
        #expect(try server.store.attachments.unfinishedUploads().isEmpty, "nothing of the damaged chunk was kept")

        // A chunk that does not start where the upload stands.
        let misplaced = try await onThread { try put(Data(content[100_000..<200_000]), at: 100_000, digest: sha256(Data(content[100_000..<200_000])), sha: sha) }
        #expect(misplaced.status == 409)
        #expect(try JSONDecoder().decode(ErrorResponse.self, from: misplaced.body).error.code == .uploadOffset)

        // Whole chunks of other content announced under this hash: refused when complete, dropped.
        let other = Data(content.reversed())
        let wrong = try await onThread { try put(other, at: 0, digest: sha256(other), sha: sha) }
        #expect(wrong.status == 422)
        #expect(try server.store.attachments.list().isEmpty)
        #expect(try server.store.attachments.unfinishedUploads().isEmpty)

        // A typo in the hash is said to be one, not answered as "not found".
        let typo = try await onThread { try CurlTransport(baseURL: url, token: token).send(method: "GET", path: "/v1/attachments/brief.jpg", query: [], body: nil) }
        #expect(typo.status == 400)
        #expect(String(decoding: typo.body, as: UTF8.self).contains("is not a SHA-256"))
        await server.stop()
    }

    @Test func anUploadFinishedAfterAServerRestartIsCheckedByReadingItBack() async throws {
        let first = try await AccessTests.start()
        let directory = first.directory
        let token = try first.token("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        var content = Data((0..<250_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) })
        let sha = sha256(content)
        @Sendable func put(_ url: String, _ chunk: Data, at offset: Int, size: Int, sha: String) throws -> HTTPExchange {
            try Self.put(url, token: token, chunk, at: offset, size: size, sha: sha)
        }
        let half = content.prefix(100_000), rest = content.suffix(from: 100_000)
        let size = content.count
        #expect(try await onThread { try put(first.url, Data(half), at: 0, size: size, sha: sha) }.status == 200)
        await first.stop()

        // Another process finishes the upload: it never saw the first chunk, so it reads the whole back to check it.
        let second = try await TestServer.start(directory: directory)
        let done = try await onThread { try put(second.url, Data(rest), at: 100_000, size: size, sha: sha) }
        #expect(done.status == 200)
        #expect(try JSONDecoder().decode(AttachmentUpload.self, from: done.body).complete)
        #expect(try second.store.attachments.list().map(\.sha256) == [sha])

        // And content that is not what its hash says is caught the same way.
        content[7] ^= 0x01
        let wrongSHA = sha256(Data(content.prefix(100_000)) + Data(repeating: 1, count: 150_000))
        let damagedHalf = Data(content.prefix(100_000)), damagedRest = Data(content.suffix(from: 100_000))
        let accepted = try await onThread { try put(second.url, damagedHalf, at: 0, size: size, sha: wrongSHA) }
        #expect(accepted.status == 200)
        await second.stop()
        let third = try await TestServer.start(directory: directory)
        let refused = try await onThread { try put(third.url, damagedRest, at: 100_000, size: size, sha: wrongSHA) }
        #expect(refused.status == 422)
        #expect(try third.store.attachments.list().map(\.sha256) == [sha])
        #expect(try third.store.attachments.unfinishedUploads().isEmpty)
        await third.stop()
    }

    @Test func anErasedResidentsAttachmentsLeaveNoByteOnTheServerOrAnyDevice() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office")
        for replica in [fatima, office] { try await replica.sync() }
        let letter = try photo("beslagbrief-devries")
        let (row, _) = try addDocument(fatima, file: letter.path)
        let replaced = try photo("oude-scan-devries", size: 400_000)
        let plan = newID()
        try await fatima.execute("INSERT INTO plans (id, case_id, status) VALUES (?, ?, 'signed')", [.text(plan), .text(Self.deVriesCase)])
        try fatima.attach(file: replaced.path, table: "plans", row: plan, column: "signed_document")
        try await fatima.sync()
        // The plan's scan is replaced: the old one lives on only in the plan's history.
        let newer = try photo("nieuwe-scan-devries", size: 300_000)
        try fatima.attach(file: newer.path, table: "plans", row: plan, column: "signed_document")
        try await fatima.sync()
        try await office.sync()
        _ = try await SyncEngine(replica: office).openAttachment(table: "documents", row: row, column: "file")
        #expect(try server.store.attachments.list().count == 3)

        let report = try server.store.erasure.eraseResident(Self.deVries, actor: "test")
        #expect(report.attachments == 3)
        #expect(try server.store.attachments.list().isEmpty)
        let fatimasSync = try await fatima.sync()
        let officeSync = try await office.sync()
        #expect(fatimasSync.attachmentsRemoved >= 1 && officeSync.attachmentsRemoved >= 1)

        let everything = everyFile(under: [server.directory], replicas: [fatima, office])
        #expect(everything.count >= 4)
        for marker in ["beslagbrief-devries", "oude-scan-devries", "nieuwe-scan-devries"] {
            let found = try filesContaining(marker, in: everything)
            #expect(found.isEmpty, "\(marker) found in \(found)")
        }
        await server.stop()
    }

    @Test func aBackupHoldsTheAttachmentsAndRestoringOneDoesNotBringBackAnErasedResidentsPhotos() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        try await fatima.sync()
        let letter = try photo("back-up-brief", size: 600_000)
        let (row, _) = try addDocument(fatima, file: letter.path)
        try await fatima.sync()
        let backup = try temporaryDirectory("backup") + "/store.backup"
        try await onThread { try server.store.backups.backup(to: backup) }

        // A store restored from the backup serves the photo.
        let other = try await TestServer.start()
        _ = try other.store.backups.restore(from: backup, actor: "test")
        let office = try other.replica("office")
        try await office.sync()
        let file = try await SyncEngine(replica: office).openAttachment(table: "documents", row: row, column: "file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == letter.bytes)
        await other.stop()

        // Erased after the backup: restoring the backup erases her again, photo included.
        _ = try server.store.erasure.eraseResident(Self.deVries, actor: "test")
        let restored = try server.store.backups.restore(from: backup, actor: "test")
        #expect(restored.erasedAgain > 0)
        #expect(try server.store.attachments.list().isEmpty)
        #expect(try filesContaining("back-up-brief", in: everyFile(under: [server.directory], replicas: [])).isEmpty)
        await server.stop()
    }

    @Test func anEvictedCasesFilesLeaveTheDevice() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office")
        for replica in [fatima, office] { try await replica.sync() }
        let letter = try photo("huurachterstand")
        try addDocument(fatima, file: letter.path)
        try await fatima.sync()
        let files = try FileManager.default.contentsOfDirectory(atPath: fatima.attachmentsDirectory)
        #expect(files.count == 1)

        // The case moves to Heiloo: its rows leave Fatima's laptop, and the photo with them.
        try await office.sync()
        try await office.execute("UPDATE cases SET team = 'heiloo' WHERE id = ?", [.text(Self.deVriesCase)])
        try await office.sync()
        let moved = try await fatima.sync()
        #expect(moved.pulled.rowsEvicted > 0)
        #expect(moved.attachmentsRemoved == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fatima.attachmentsDirectory).isEmpty)
        #expect(try filesContaining("huurachterstand", in: everyFile(under: [], replicas: [fatima])).isEmpty)
        await server.stop()
    }

    @Test func theSameContentFromTwoDevicesIsStoredOnceAndAnAuditorUploadsNothing() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let ilse = try server.replica("laptop ilse", user: "ilse", role: .consultant, scopes: ["team:castricum-noord"])
        for replica in [fatima, ilse] { try await replica.sync() }
        // Both photograph the same letter (the resident handed each a copy of the same scan).
        let letter = try photo("zelfde-brief", size: 1_300_000)
        try addDocument(fatima, file: letter.path)
        try addDocument(ilse, file: letter.path)
        #expect(try await fatima.sync().attachmentsUploaded == 1)
        let second = try await ilse.sync()
        #expect(second.stillRejected == 0)
        let summary = try server.store.attachments.summary()
        #expect(summary.stored.count == 1 && summary.stored.first?.references == 2 && summary.unfinished.isEmpty)
        #expect(summary.totalBytes == Int64(letter.bytes.count))

        // The first device's content is what is served, whoever asks.
        let office = try server.replica("office")
        try await office.sync()
        let documents = try await office.query("SELECT id FROM documents ORDER BY id").rows.map(\.description)
        #expect(documents.count == 2)
        for row in try await office.query("SELECT id FROM documents").rows {
            let file = try await SyncEngine(replica: office).openAttachment(table: "documents", row: row[0].description, column: "file")
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == letter.bytes)
        }

        // An auditor's device reads only: it cannot upload.
        let auditor = try server.token("auditor laptop", user: "ruud-test", role: .auditor, scopes: ["*"])
        let url = server.url
        let refused = try await onThread {
            try Self.put(url, token: auditor, Data("x".utf8), at: 0, size: 1, sha: String(repeating: "0", count: 64))
        }
        #expect(refused.status == 403)
        #expect(try JSONDecoder().decode(ErrorResponse.self, from: refused.body).error.code == .readOnly)
        await server.stop()
    }

    @Test func aRemoteWipeDeletesTheAttachmentsWithTheReplica() async throws {
        let server = try await AccessTests.start()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        try await fatima.sync()
        let letter = try photo("verloren-laptop", size: 500_000)
        try addDocument(fatima, file: letter.path)
        try await fatima.sync()
        let folder = fatima.attachmentsDirectory
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).count == 1)

        _ = try server.store.accounts.markDeviceLost("laptop fatima", actor: "test")
        await #expect(throws: SyncError.self) { try await fatima.sync() }
        #expect(!FileManager.default.fileExists(atPath: fatima.path))
        #expect(!FileManager.default.fileExists(atPath: folder), "the photos went with the replica")
        await server.stop()
    }

    @Test func attachmentsWorkOnPostgreSQL() async throws {
        let server = try await TestServer.start(store: .postgresql)
        _ = try server.store.demo.load()
        let fatima = try server.replica("laptop fatima", user: "fatima", role: .consultant, scopes: ["team:castricum-noord"])
        let office = try server.replica("office")
        try await fatima.sync()
        let letter = try photo("pg-brief", size: 2 * 1024 * 1024 + 77)
        let (row, _) = try addDocument(fatima, file: letter.path)
        let pushed = try await fatima.sync()
        #expect(pushed.attachmentsUploaded == 1 && pushed.stillRejected == 0)
        try await office.sync()
        let engine = try SyncEngine(replica: office)
        engine.attachmentChunkBytes = 300_000  // several ranged requests
        let file = try await engine.openAttachment(table: "documents", row: row, column: "file")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == letter.bytes)
        let report = try server.store.erasure.eraseResident(Self.deVries, actor: "test")
        #expect(report.attachments == 1)
        #expect(try server.store.attachments.list().isEmpty)
        await server.stop()
    }
}

/// Waits, without sleeping for a fixed time, until `condition` holds (polling every 10 ms, at most 60 s).
func waitUntil(_ what: String, _ condition: @escaping @Sendable () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure("waited 60 s for \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
