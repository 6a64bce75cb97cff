import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to its end through `posix_spawn`, with its output and errors collected.
///
/// Not Foundation's `Process`: on Linux its `run()` reads the names of the parent's open files with a
/// 256-byte copy per entry and crashes now and then when an entry lies at the end of a mapped page
/// (swift-corelibs-foundation PR 5472, not in this toolchain); a test process with many servers and
/// connections open hit it in one full run out of two. The child gets a clean standard input
/// (`/dev/null`); descriptors the parent opened without close-on-exec are inherited (SQLite and NIO
/// open theirs with it).
public enum Spawn {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
        public var error: String
    }

    /// Runs `executable` with `arguments` in `directory` (default: the current one). `environment`
    /// replaces the inherited environment when given.
    public static func run(_ executable: String, _ arguments: [String], in directory: String? = nil,
                           environment: [String: String]? = nil) throws -> Result {
        let out = try closeOnExecPipe(), err = try closeOnExecPipe()
        let pid: pid_t
        do {
            pid = try launch(executable, arguments, in: directory, environment: environment, output: out[1], errors: err[1])
        } catch {
            for fd in out + err { close(fd) }
            throw error
        }
        close(out[1])
        close(err[1])
        // Errors on a thread of their own, so a child filling one pipe never waits for us to read the other.
        let errors = Collected()
        let done = DispatchSemaphore(value: 0)
        let errorPipe = err[0]
        Thread {
            errors.set(readAll(errorPipe))
            done.signal()
        }.start()
        let output = readAll(out[0])
        done.wait()
        close(out[0])
        close(err[0])
        let child = SpawnedProcess(pid: pid, output: nil)
        child.waitUntilExit()
        return Result(status: child.terminationStatus, output: String(decoding: output, as: UTF8.self), error: String(decoding: errors.value, as: UTF8.self))
    }

    private static func readAll(_ fd: Int32) -> [UInt8] {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count > 0 {
                data += buffer[0..<count]
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return data
            }
        }
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var bytes: [UInt8] = []
        func set(_ value: [UInt8]) { lock.withLock { bytes = value } }
        var value: [UInt8] { lock.withLock { bytes } }
    }
}

/// A program could not be started.
public struct SpawnError: Error, CustomStringConvertible {
    public var description: String
}

extension Spawn {
    /// Starts `executable` in the background (see `run` for why not `Process`). Its standard output is a
    /// pipe when `captureOutput` (read it from `standardOutput`), else `/dev/null`; its errors go to
    /// `/dev/null`. `environment` replaces the inherited one when given.
    public static func start(_ executable: String, _ arguments: [String], in directory: String? = nil,
                             environment: [String: String]? = nil, captureOutput: Bool = false) throws -> SpawnedProcess {
        let out = captureOutput ? try closeOnExecPipe() : nil
        let pid: pid_t
        do {
            pid = try launch(executable, arguments, in: directory, environment: environment, output: out?[1], errors: nil)
        } catch {
            for fd in out ?? [] { close(fd) }
            throw error
        }
        if let out { close(out[1]) }
        return SpawnedProcess(pid: pid, output: out.map { FileHandle(fileDescriptor: $0[0], closeOnDealloc: true) })
    }

    /// Starts the program through `env`, which changes directory and environment in the child (posix_spawn
    /// cannot portably): standard input from `/dev/null`, output and errors to these descriptors or `/dev/null`.
    private static func launch(_ executable: String, _ arguments: [String], in directory: String?, environment: [String: String]?,
                               output: Int32?, errors: Int32?) throws -> pid_t {
        var argv = ["/usr/bin/env"]
        if let directory { argv += ["-C", directory] }
        if environment != nil { argv.append("-i") }
        argv.append("--")  // the end of env's options; assignments and the command follow
        argv += (environment ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        argv += [executable] + arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (target, source) in [(Int32(1), output), (Int32(2), errors)] {
            if let source {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            }
        }
        let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let started = posix_spawn(&pid, "/usr/bin/env", &actions, nil, cArguments, environ)
        guard started == 0 else { throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(started)))") }
        return pid
    }

    /// A pipe whose ends close on exec, so that other children started meanwhile do not hold them open.
    private static func closeOnExecPipe() throws -> [Int32] {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "cannot make a pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fds
    }
}

/// A program started by `Spawn.start`, with the parts of Foundation's `Process` the tools use.
public final class SpawnedProcess: @unchecked Sendable {
    public let processIdentifier: Int32
    /// The read end of the child's standard output, when captured.
    public let standardOutput: FileHandle?
    private let lock = NSLock()
    private var status: Int32?

    init(pid: Int32, output: FileHandle?) {
        processIdentifier = pid
        standardOutput = output
    }

    /// Whether the child still runs (reaping it if it ended).
    public var isRunning: Bool { reap(blocking: false) == nil }

    /// The exit status (128 + signal when a signal ended it); -1 while it runs.
    public var terminationStatus: Int32 { reap(blocking: false) ?? -1 }

    /// SIGTERM, as `Process.terminate()`.
    public func terminate() {
        if isRunning { kill(processIdentifier, SIGTERM) }
    }

    /// Waits for the child's end.
    public func waitUntilExit() { _ = reap(blocking: true) }

    private func reap(blocking: Bool) -> Int32? {
        lock.withLock {
            if let status { return status }
            var raw: Int32 = 0
            while true {
                let reaped = waitpid(processIdentifier, &raw, blocking ? 0 : WNOHANG)
                if reaped == processIdentifier {
                    status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                    return status
                }
                if reaped == -1 && errno == EINTR { continue }
                if reaped == -1 { status = -1; return status }  // not ours to wait for any more
                return nil
            }
        }
    }
}
