import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

// Files attached to rows: attaching offline (`kt attach`), listing and fetching (`kt attachments`).
struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach a file (photo, scan, signed document) to a row's attachment column, offline.",
        discussion: """
            The file is copied next to the replica; the next `kt sync` uploads it (resuming where a cut \
            connection stopped) and then sends the row's new value.
              kt attach plans PLAN_ID signed_document plan.pdf --db laptop.sqlite

            A row that needs its file when it is inserted (documents.file is required) is inserted with it:
              kt attach documents NEW_ID file brief.jpg \\
                --insert case_id=CASE_ID --insert kind=photo --db laptop.sqlite
            """)
    @OptionGroup var options: ReplicaOptions
    @Argument(help: "Table.") var table: String
    @Argument(help: "Row id.") var row: String
    @Argument(help: "The attachment column.") var column: String
    @Argument(help: ArgumentHelp("The file to attach.", valueName: "file")) var file: String
    @Option(name: .long, help: ArgumentHelp("The media type (default: from the file name, e.g. image/jpeg).", valueName: "type"))
    var type: String?
    @Option(name: .long, help: ArgumentHelp("The file name to record (default: the file's own).", valueName: "name")) var name: String?
    @Option(name: .long, help: ArgumentHelp("Insert the row with this column value too (repeatable): COLUMN=VALUE.", valueName: "column=value"))
    var insert: [String] = []

    func run() throws {
        let replica = try options.open()
        let reference: AttachmentReference
        do {
            if insert.isEmpty {
                reference = try replica.attach(file: file, table: table, row: row, column: column, mediaType: type, name: name)
            } else {
                reference = try replica.importAttachment(file: file, table: table, column: column, mediaType: type, name: name)
                var columns = ["id", column]
                var values: [CellValue] = [.text(row), reference.cellValue]
                for pair in insert {
                    guard let equals = pair.firstIndex(of: "=") else { throw ValidationError("--insert takes COLUMN=VALUE, not '\(pair)'") }
                    columns.append(String(pair[..<equals]))
                    values.append(.text(String(pair[pair.index(after: equals)...])))
                }
                let sql = "INSERT INTO \"\(table)\" (\(columns.map { "\"\($0)\"" }.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
                try replica.execute(sql, values)
            }
        } catch let error as AttachmentError {
            Terminal.printError("cannot attach: \(error)")
            throw ExitCode(2)
        } catch let error as ValidationError {
            throw error
        } catch {
            Terminal.printError("cannot attach: \(error)")
            throw ExitCode(2)
        }
        if options.json { return try Terminal.printJSON(reference) }
        print("attached \(reference.name) (\(reference.mediaType), \(byteCount(reference.size)), sha256 \(reference.sha256.prefix(12))…) "
              + "to \(table).\(column) of \(row); `kt sync` uploads it")
    }
}

struct Attachments: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The files attached to rows on this device: list them, fetch one.",
        subcommands: [List.self, Get.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the attachments the rows on this device refer to, and whether their content is here.",
            discussion: "  kt attachments list --db laptop.sqlite [--missing]")
        @OptionGroup var options: ReplicaOptions
        @Flag(help: "Only those whose content is not on this device (not downloaded yet).") var missing = false

        func run() throws {
            let replica = try options.open()
            let found = try replica.attachments(missingOnly: missing)
            if options.json {
                return try Terminal.printJSON(found.map { status in
                    ListedAttachment(sha256: status.reference.sha256, name: status.reference.name, type: status.reference.mediaType,
                                     size: status.reference.size, file: status.file, waitingForUpload: status.waitingForUpload,
                                     rows: status.rows.map { "\($0.table).\($0.column) \($0.row)" })
                })
            }
            if found.isEmpty {
                print(missing ? "every attachment on this device has its content here" : "no row on this device has an attachment")
                return
            }
            for status in found {
                let state = status.waitingForUpload ? "to upload" : (status.file == nil ? "not downloaded" : "here")
                print("\(status.reference.name)  \(status.reference.mediaType)  \(byteCount(status.reference.size))  \(state)")
                for row in status.rows { print("    \(row.table).\(row.column) \(row.row)") }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch a row's attachment (downloading it when it is not here yet) and say where it is, or copy it.",
            discussion: "  kt attachments get documents 0b8f…-… file --db laptop.sqlite --out ~/Desktop/brief.jpg")
        @OptionGroup var options: ReplicaOptions
        @Argument(help: "Table.") var table: String
        @Argument(help: "Row id.") var row: String
        @Argument(help: "The attachment column.") var column: String
        @Option(name: .long, help: ArgumentHelp("Copy the content to this file (refuses to overwrite one).", valueName: "file")) var out: String?
        @Option(name: .long, help: ArgumentHelp("Extra CA certificates (PEM) to trust (default: the one given to kt init).", valueName: "file"))
        var caBundle: String?

        func run() throws {
            let replica = try options.open()
            if let out, FileManager.default.fileExists(atPath: out) {
                throw ValidationError("'\(out)' exists; pick another file or remove it first")
            }
            let file: String
            do {
                if let reference = try replica.attachmentReference(table: table, row: row, column: column), let here = replica.localFile(of: reference) {
                    file = here
                } else {
                    let engine = try SyncEngine(replica: replica, caBundlePath: caBundle)
                    let bar = TransferBar(terminal: isatty(STDERR_FILENO) == 1 && !options.json)
                    file = try engine.openAttachment(table: table, row: row, column: column) { done, total in bar.show(done, total) }
                    bar.finish()
                }
            } catch {
                Terminal.printError("cannot get the attachment: \(error)")
                throw ExitCode(2)
            }
            if let out { try FileManager.default.copyItem(atPath: file, toPath: out) }
            if options.json { return try Terminal.printJSON(["file": out ?? file]) }
            print(out ?? file)
        }
    }
}

struct ListedAttachment: Encodable {
    var sha256: String
    var name: String
    var type: String
    var size: Int64
    var file: String?
    var waitingForUpload: Bool
    var rows: [String]
}

/// A progress bar for a transfer on a terminal: `[#####     ] 1.2 MB of 3.4 MB`.
final class TransferBar: @unchecked Sendable {
    private let terminal: Bool
    private let lock = NSLock()
    private var drawn = false

    init(terminal: Bool) { self.terminal = terminal }

    func show(_ done: Int64, _ total: Int64, label: String = "") {
        guard terminal, total > 0 else { return }
        let width = 30
        let filled = Int(Double(width) * Double(min(done, total)) / Double(total))
        let line = "\r\(label)[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] "
            + "\(byteCount(done)) of \(byteCount(total))  "
        lock.withLock {
            FileHandle.standardError.write(Data(line.utf8))
            drawn = true
        }
    }

    func finish() {
        lock.withLock {
            if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
            drawn = false
        }
    }

    /// For `kt sync`: a bar per file as it moves, on a terminal only (a log gets the summary lines).
    static func reporter(terminal: Bool) -> (@Sendable (AttachmentTransfer) -> Void)? {
        guard terminal else { return nil }
        let bar = TransferBar(terminal: true)
        return { transfer in
            bar.show(transfer.done, transfer.total, label: "\(transfer.direction == .upload ? "uploading" : "downloading") \(transfer.name.prefix(30)) ")
            if transfer.done >= transfer.total { bar.finish() }
        }
    }
}

func byteCount(_ bytes: Int64) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    if bytes < 1024 * 1024 { return String(format: "%.1f KB", Double(bytes) / 1024) }
    return String(format: "%.1f MB", Double(bytes) / 1024 / 1024)
}
