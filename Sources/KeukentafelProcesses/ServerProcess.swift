import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `ktd serve` as a child process, for the tools and tests that run the real server: started on
/// loopback, returned once it says where it listens, stopped or killed on request.
public struct ServerProcess: Sendable {
    /// The running `ktd` (started through `posix_spawn`, not Foundation's `Process`: see `Spawn`).
    public let process: SpawnedProcess
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }
    /// Where its `/metrics` is served (a free port of its own unless `arguments` name one).
    public let metricsPort: Int?

    /// Starts `ktd` from `bin` on `port` (0: any free one). With a fixed port it retries for a moment
    /// while a killed predecessor's socket is released. `arguments` go to `ktd serve` as well
    /// (e.g. `--postgres URL`).
    public static func start(bin: URL, data: String, schema: String, port: Int = 0, in directory: String? = nil,
                             arguments: [String] = []) throws -> ServerProcess {
        for attempt in 0..<50 {
            // Metrics on a free port: the default (the listen port + 1000) could clash between servers.
            let metrics = arguments.contains("--metrics-listen") ? [] : ["--metrics-listen", "127.0.0.1:0"]
            let wantsMetrics = !arguments.contains("off")
            let process = try Spawn.start(bin.appendingPathComponent("ktd").path,
                                          ["serve", "--data", data, "--schema", schema, "--listen", "127.0.0.1:\(port)", "--stop-with-parent"]
                                            + metrics + arguments, in: directory, captureOutput: true)
            let out = process.standardOutput!
            var buffer = ""
            while !buffer.contains("ktd listening on ") || (wantsMetrics && !buffer.contains("ktd metrics on ")) || !buffer.hasSuffix("\n") {
                let chunk = out.availableData
                if chunk.isEmpty { break }
                buffer += String(decoding: chunk, as: UTF8.self)
            }
            if let line = buffer.split(separator: "\n").first(where: { $0.contains("ktd listening on ") }),
               let bound = line.split(separator: ":").last.flatMap({ Int($0) }) {
                let metricsPort = buffer.split(separator: "\n").first { $0.contains("ktd metrics on ") }
                    .flatMap { $0.split(separator: ":").last?.split(separator: "/").first.flatMap { Int($0) } }
                return ServerProcess(process: process, port: bound, metricsPort: metricsPort)
            }
            process.waitUntilExit()
            guard port != 0 else { break }
            usleep(UInt32(20_000 * (attempt + 1)))
        }
        throw ServerProcessError(description: "ktd does not start on port \(port) (data \(data))")
    }

    /// SIGKILL: no chance to finish anything.
    public func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(seconds: 60)
    }

    /// SIGTERM: a graceful shutdown; SIGKILL if it has not ended within `graceSeconds`. Returns whether
    /// the server ended by itself.
    @discardableResult
    public func stop(graceSeconds: Double = 30) -> Bool {
        process.terminate()
        if waitForExit(seconds: graceSeconds) { return true }
        Glibc.kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(seconds: 60)
        return false
    }

    /// Polls for the child's end (reaping it) instead of `Process.waitUntilExit`, which was seen to spin
    /// forever on a child that had already exited while many tests ran at once.
    private func waitForExit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if !process.isRunning { return true }
            usleep(20_000)
        }
        return false
    }

    /// `Schemas/datamodel.yaml`, looked for above the running executable, then in the working directory.
    /// The executable is `/proc/self/exe`: `argv[0]` is only the name when a tool is started from `PATH`.
    public static func schemaPath() -> String? {
        let executable = FileManager.default.fileExists(atPath: "/proc/self/exe") ? "/proc/self/exe" : CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent("Schemas/datamodel.yaml").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return FileManager.default.fileExists(atPath: "Schemas/datamodel.yaml") ? "Schemas/datamodel.yaml" : nil
    }
}

public struct ServerProcessError: Error, CustomStringConvertible {
    public var description: String
}
