import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelTerminal

/// Where `kt` finds an encrypted replica's passphrase, in this order: the file descriptor given with
/// `--passphrase-fd` (for a daemon: `3<secret-file`), the environment variable, the terminal.
/// Never an option's value: that would stand in the shell's history and in `ps`.
enum Passphrase {
    static let variable = "KT_PASSPHRASE"
    static let newVariable = "KT_NEW_PASSPHRASE"

    static func read(for db: String, fd: Int32?, variable: String = variable, prompt: String? = nil, confirm: Bool = false) throws -> String {
        if let fd {
            guard fcntl(fd, F_GETFD) != -1 else {
                throw ValidationError("--passphrase-fd \(fd) is not an open file descriptor (open it in the shell, e.g. `3<passphrase.txt`)")
            }
            guard let line = Terminal.readLine(from: fd), !line.isEmpty else {
                throw ReplicaError.passphraseRequired("file descriptor \(fd) gave no passphrase for '\(db)'")
            }
            return line
        }
        if let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty { return value }
        let question = prompt ?? "Passphrase for \(db): "
        guard let typed = Terminal.readSecret(prompt: question) else {
            throw ReplicaError.passphraseRequired("'\(db)' needs a passphrase and there is no terminal to ask it on; "
                                                  + "set \(variable) or pass --passphrase-fd N")
        }
        if confirm {
            guard Terminal.readSecret(prompt: "The same passphrase again: ") == typed else {
                throw ReplicaError.passphraseRequired("the two passphrases differ; nothing was created or changed")
            }
        }
        return typed
    }
}

struct ChangePassphrase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passphrase",
        abstract: "Give an encrypted replica a new passphrase.",
        discussion: """
            Only the key file (FILE.key) is rewritten; the data stays encrypted with the same key, so this \
            is instant and safe to interrupt. The old passphrase comes from --passphrase-fd, KT_PASSPHRASE \
            or the terminal; the new one from --new-passphrase-fd, KT_NEW_PASSPHRASE or the terminal (twice).
              kt passphrase --db laptop.sqlite
            """)

    @OptionGroup var options: ReplicaOptions
    @Option(name: .long, help: ArgumentHelp("Read the new passphrase from this open file descriptor.", valueName: "fd"))
    var newPassphraseFd: Int32?

    func run() throws {
        let db = options.db
        guard FileManager.default.fileExists(atPath: db) else { throw ReplicaError.notInitialized("no replica at '\(db)'") }
        guard Replica.isEncrypted(path: db) else {
            throw ReplicaError.notEncrypted("'\(db)' is not encrypted, so it has no passphrase; an encrypted replica is made by `kt init` without --plain")
        }
        let old = try Passphrase.read(for: db, fd: options.passphraseFd, prompt: "Current passphrase for \(db): ")
        let new = try Passphrase.read(for: db, fd: newPassphraseFd, variable: Passphrase.newVariable,
                                      prompt: "New passphrase for \(db): ", confirm: true)
        try Replica.changePassphrase(path: db, from: old, to: new)
        if options.json { return try Terminal.printJSON(["db": db, "changed": "true"]) }
        print("The passphrase of \(db) was changed; the data was not touched.")
    }
}
