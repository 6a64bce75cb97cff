import ArgumentParser

@main
struct KTBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kt-bench",
        abstract: "Measure Keukentafel end to end, against the raw database in the same run.",
        discussion: """
            kt-bench real     the real data model through `kt` processes over HTTP (the default)
            kt-bench micro    a micro-benchmark on a 10-column model of its own: the sync machinery alone
            kt-bench reads    read latency on a replica while it bootstraps (real data model)
            kt-bench live     thousands of devices long-polling, one push: who wakes, how fast (real data model)
            kt-bench attachments  photos up and down through kt sync, against curl and a plain file server
            kt-bench encryption   bootstrap and reads on an encrypted replica against a plain one (real data model)
            Use a release build: Tools/bench [real|micro] [options].
            """,
        subcommands: [RealModelBench.self, MicroBench.self, ReadLatencyBench.self, LiveSyncBench.self, AttachmentBench.self, EncryptionBench.self],
        defaultSubcommand: RealModelBench.self)
}
