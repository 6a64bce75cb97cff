import ArgumentParser
import Foundation
import Hummingbird
import KeukentafelClient
import KeukentafelProcesses
import KeukentafelProtocol
import KeukentafelServer
import Logging

/// Photos up and down (issue 20): `kt sync` uploading N photos of 2–5 MB to a real `ktd` and another
/// laptop's `kt sync` downloading them (an `eager` column), against `curl` moving the same files to and
/// from a plain HTTP file server (Hummingbird's own file I/O) in the same run, on the same loopback.
struct AttachmentBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attachments",
        abstract: "Upload and download of photos (real data model) against curl and a plain file server, MB/s.",
        discussion: """
            The photos are random bytes (incompressible, as JPEG is) attached to plans.signed_document, whose
            download is eager: the second laptop's `kt sync` fetches them all. Client and server run in processes
            of their own; their peak memory is printed to show that nothing holds a whole file.
              Tools/bench attachments
              Tools/bench attachments --photos 50 --postgres URL
            """)

    @Option(help: "Photos to move.") var photos = 200
    @Option(help: "Smallest photo, in MB.") var minMB = 2.0
    @Option(help: "Largest photo, in MB.") var maxMB = 5.0
    @Option(help: ArgumentHelp("The data model.", valueName: "file")) var schema: String?
    @Option(help: ArgumentHelp("The ktd to measure (default: ktd next to kt-bench).", valueName: "path")) var ktd: String?
    @Option(help: ArgumentHelp("Keep the store on this (empty) PostgreSQL database.", valueName: "url")) var postgres: String?
    @Flag(help: "Print only JSON.") var json = false

    struct Figures: Codable {
        var photos: Int
        var megabytes: Double
        var uploadSeconds: Double
        var uploadMBps: Double
        var curlUploadSeconds: Double
        var curlUploadMBps: Double
        var downloadSeconds: Double
        var downloadMBps: Double
        var curlDownloadSeconds: Double
        var curlDownloadMBps: Double
        var ktSyncUploadPeakMB: Double
        var ktSyncDownloadPeakMB: Double
        var ktdPeakMBBefore: Double
        var ktdPeakMBAfter: Double
        var ktdCPUSecondsUpload: Double
        var ktdCPUSecondsDownload: Double
        var storeBytesPerPhotoByte: Double?
    }

    func run() async throws {
        guard photos > 0, minMB > 0, maxMB >= minMB else { throw ValidationError("need --photos ≥ 1 and 0 < --min-mb ≤ --max-mb") }
        guard let ktdPath = ktd ?? ChildProcess.besideThisExecutable("ktd"), let ktPath = ChildProcess.besideThisExecutable("kt") else {
            throw ValidationError("no ktd and kt beside kt-bench: build them (Tools/bench does) or pass --ktd")
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { throw ValidationError("the baseline needs /usr/bin/curl") }
        guard let schemaPath = schema ?? ServerProcess.schemaPath() else { throw ValidationError("cannot find Schemas/datamodel.yaml; pass --schema") }
        let model = try DataModelFile.load(path: schemaPath)
        let work = NSTemporaryDirectory() + "kt-bench-attachments-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work + "/photos", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }

        // The photos: random bytes written a megabyte at a time (nothing here holds a whole photo either).
        var generator = SplitMix64(seed: 20)
        var names: [String] = []
        var totalBytes: Int64 = 0
        for index in 0..<photos {
            let size = Int((minMB + (maxMB - minMB) * Double(generator.next() % 10_000) / 10_000) * 1024 * 1024)
            let name = String(format: "IMG_%04d.jpg", index)
            let path = work + "/photos/" + name
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            var left = size
            while left > 0 {
                let count = min(left, 1 << 20)
                var chunk = [UInt8](repeating: 0, count: count)
                chunk.withUnsafeMutableBytes { raw in
                    let words = raw.bindMemory(to: UInt64.self)
                    for i in words.indices { words[i] = generator.next() }
                }
                try handle.write(contentsOf: chunk)
                left -= count
            }
            try handle.close()
            names.append(name)
            totalBytes += Int64(size)
        }
        let megabytes = Double(totalBytes) / 1024 / 1024

        // The store, the office user, two laptops' tokens.
        let store = try postgres.map { try ServerStore(postgres: try PostgresLocation(url: $0), dataModel: model) }
            ?? ServerStore(directory: work + "/server", dataModel: model)
        _ = try store.accounts.addUser(name: "office", role: .backOffice, actor: "kt-bench")
        _ = try store.accounts.addScope(Access.everyScope, to: "office", actor: "kt-bench")
        let tokens = try ["laptop a", "laptop b"].map { try store.accounts.addDevice(name: $0, user: "office").token }
        let bin = URL(fileURLWithPath: ktdPath).deletingLastPathComponent()
        let server = try ServerProcess.start(bin: bin, data: work + "/server", schema: schemaPath, arguments: postgres.map { ["--postgres", $0] } ?? [])
        defer { server.stop() }
        let pid = server.process.processIdentifier

        // Laptop A: a case with a plan per photo, each photo attached (copied into its folder; not timed).
        let a = try Replica.create(path: work + "/a.sqlite", dataModel: model, serverURL: server.url, token: tokens[0])
        let resident = RowID.new(), caseID = RowID.new()
        try a.transaction {
            try a.execute("INSERT INTO residents (id, last_name) VALUES (?, 'Bench')", [.text(resident)])
            try a.execute("INSERT INTO cases (id, resident_id, team, status) VALUES (?, ?, 'bench', 'melding')", [.text(caseID), .text(resident)])
        }
        for name in names {
            let plan = RowID.new()
            try await a.execute("INSERT INTO plans (id, case_id, status) VALUES (?, ?, 'signed')", [.text(plan), .text(caseID)])
            try a.attach(file: work + "/photos/" + name, table: "plans", row: plan, column: "signed_document")
        }
        let b = try Replica.create(path: work + "/b.sqlite", dataModel: model, serverURL: server.url, token: tokens[1])
        _ = b

        let ktdBefore = Double(Memory.peakKilobytes(of: "/proc/\(pid)/status")) / 1024
        var cpu = ProcessFigures.cpuSeconds(pid)
        var started = Date()
        let uploadPeak = try ChildProcess.run(ktPath, ["sync", "--db", work + "/a.sqlite"])
        let uploadSeconds = Date().timeIntervalSince(started)
        let uploadCPU = ProcessFigures.cpuSeconds(pid) - cpu
        guard try store.attachments.list().count == photos else { throw ValidationError("the server holds \(try store.attachments.list().count) photos, not \(photos)") }

        cpu = ProcessFigures.cpuSeconds(pid)
        started = Date()
        let downloadPeak = try ChildProcess.run(ktPath, ["sync", "--db", work + "/b.sqlite"])
        let downloadSeconds = Date().timeIntervalSince(started)
        let downloadCPU = ProcessFigures.cpuSeconds(pid) - cpu
        let fetched = (try? FileManager.default.contentsOfDirectory(atPath: work + "/b.sqlite.attachments")) ?? []
        guard fetched.filter({ !$0.hasSuffix(".part") }).count == photos else {
            throw ValidationError("laptop b holds \(fetched.count) photos after its sync, not \(photos)")
        }
        let ktdAfter = Double(Memory.peakKilobytes(of: "/proc/\(pid)/status")) / 1024
        // The database file alone: its write-ahead log is a working copy that checkpoints empty.
        let file = work + "/server/" + ServerStore.fileName
        let storeBytes = postgres == nil
            ? ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? NSNumber).map { $0.doubleValue / Double(totalBytes) } : nil

        // The baseline: curl to and from a plain file server on the same loopback, same files.
        let curl = try await CurlBaseline.run(photos: work + "/photos", names: names, work: work)

        let figures = Figures(
            photos: photos, megabytes: megabytes,
            uploadSeconds: uploadSeconds, uploadMBps: megabytes / uploadSeconds,
            curlUploadSeconds: curl.upload, curlUploadMBps: megabytes / curl.upload,
            downloadSeconds: downloadSeconds, downloadMBps: megabytes / downloadSeconds,
            curlDownloadSeconds: curl.download, curlDownloadMBps: megabytes / curl.download,
            ktSyncUploadPeakMB: Double(uploadPeak) / 1024, ktSyncDownloadPeakMB: Double(downloadPeak) / 1024,
            ktdPeakMBBefore: ktdBefore, ktdPeakMBAfter: ktdAfter,
            ktdCPUSecondsUpload: uploadCPU, ktdCPUSecondsDownload: downloadCPU, storeBytesPerPhotoByte: storeBytes)
        if json { return try printJSON(figures) }
        let database = postgres == nil ? "SQLite" : "PostgreSQL"
        print("kt-bench attachments: \(photos) photos, \(String(format: "%.0f", megabytes)) MB (\(minMB)–\(maxMB) MB each), real data model, "
              + "\(database) store, loopback, release build")
        print("")
        print("                               seconds     MB/s    ratio to curl")
        print(String(format: "upload   kt sync → ktd       %7.2f  %7.1f    %.2f", uploadSeconds, figures.uploadMBps, figures.uploadMBps / figures.curlUploadMBps))
        print(String(format: "         curl -T → file srv  %7.2f  %7.1f", curl.upload, figures.curlUploadMBps))
        print(String(format: "download ktd → kt sync       %7.2f  %7.1f    %.2f", downloadSeconds, figures.downloadMBps,
                     figures.downloadMBps / figures.curlDownloadMBps))
        print(String(format: "         file srv → curl     %7.2f  %7.1f", curl.download, figures.curlDownloadMBps))
        print("")
        print(String(format: "peak memory: kt sync uploading %.0f MB, downloading %.0f MB; ktd %.0f MB before, %.0f MB after (largest photo %.1f MB)",
                     figures.ktSyncUploadPeakMB, figures.ktSyncDownloadPeakMB, ktdBefore, ktdAfter, maxMB))
        print(String(format: "ktd CPU: %.2f s for the upload, %.2f s for the download", uploadCPU, downloadCPU))
        if let storeBytes { print(String(format: "store file (without its write-ahead log): %.3f bytes per photo byte", storeBytes)) }
    }

    private func printJSON(_ figures: Figures) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(figures), as: UTF8.self))
    }
}

/// curl moving the same files to and from a plain HTTP file server: Hummingbird's `FileIO` streaming a
/// PUT body to a file and a file to a GET response, on loopback, in this process.
enum CurlBaseline {
    static func run(photos: String, names: [String], work: String) async throws -> (upload: Double, download: Double) {
        let root = work + "/file-server"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let router = Router()
        router.put("files/:name") { request, context -> HTTPResponse.Status in
            let name = try context.parameters.require("name")
            try await FileIO().writeFile(contents: request.body, path: root + "/" + name, context: context)
            return .created
        }
        router.get("files/:name") { _, context -> Response in
            let name = try context.parameters.require("name")
            return Response(status: .ok, headers: [.contentType: "image/jpeg"], body: try await FileIO().loadFile(path: root + "/" + name, context: context))
        }
        let port = PortBox()
        var quiet = Logger(label: "file-server")
        quiet.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in port.set(channel.localAddress?.port ?? 0) }, logger: quiet)
        let task = Task { try await app.runService() }
        defer { task.cancel() }
        let deadline = Date().addingTimeInterval(30)
        while port.value == 0 {
            guard Date() < deadline else { throw ValidationError("the baseline file server did not start") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let base = "http://127.0.0.1:\(port.value)/files/"
        // One curl each way, reusing its connection, as kt sync does.
        var started = Date()
        try curl(["-o", "/dev/null", "-H", "Expect:", "-T", "{" + names.map { photos + "/" + $0 }.joined(separator: ",") + "}", base])
        let upload = Date().timeIntervalSince(started)
        let downloads = work + "/curl-downloads"
        try FileManager.default.createDirectory(atPath: downloads, withIntermediateDirectories: true)
        started = Date()
        try curl(["--remote-name-all", "--output-dir", downloads, base + "{" + names.joined(separator: ",") + "}"])
        let download = Date().timeIntervalSince(started)
        let got = try FileManager.default.contentsOfDirectory(atPath: downloads).count
        guard got == names.count else { throw ValidationError("curl downloaded \(got) files, not \(names.count)") }
        return (upload, download)
    }

    private static func curl(_ arguments: [String]) throws {
        _ = try ChildProcess.run("/usr/bin/curl", ["-s", "-f"] + arguments)
    }

    final class PortBox: @unchecked Sendable {
        private let lock = NSLock()
        private var port = 0
        var value: Int { lock.withLock { port } }
        func set(_ value: Int) { lock.withLock { port = value } }
    }
}
