import ArgumentParser
import Foundation
import KeukentafelClient
import KeukentafelProtocol
import KeukentafelTerminal

/// What every command that works on a replica takes: the replica file (`--db`, or `KT_DB`) and `--json`.
struct ReplicaOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The replica file.", valueName: "file"))
    var db: String = ProcessInfo.processInfo.environment["KT_DB"] ?? "keukentafel.sqlite"

    @Flag(help: "Print JSON instead of text.") var json = false

    @Option(name: .long, help: ArgumentHelp(
        "For an encrypted replica: read its passphrase from this open file descriptor (e.g. `3<secret`). "
            + "Else kt reads KT_PASSPHRASE, or asks on the terminal.", valueName: "fd"))
    var passphraseFd: Int32?

    func open() throws -> Replica {
        guard Replica.isEncrypted(path: db) else { return try Replica(path: db) }
        return try Replica(path: db, passphrase: try Passphrase.read(for: db, fd: passphraseFd))
    }
}
