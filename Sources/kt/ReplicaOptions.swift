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

    func open() throws -> Replica { try Replica(path: db) }
}
