import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One `ktd serve` per SQLite data directory. A second server on the same store would answer its own
/// devices from the same file, but a push to one would not wake the long-polls parked on the other,
/// and both would keep in-memory state of the store that the other does not see. (PostgreSQL is
/// different: there several `ktd` share one database by design and wake each other.)
///
/// The lock is an advisory `flock` on `ktd.lock` in the data directory, held for the life of the
/// process: the kernel releases it when the process ends, however it ends, so a crashed server never
/// leaves a stale lock behind. The file holds the pid of the holder, to name it in the error.
final class ServeLock {
    private let descriptor: Int32

    static func fileName() -> String { "ktd.lock" }

    init(directory: String) throws(ServeError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ServeError("cannot create the data directory \(directory): \(error.localizedDescription)")
        }
        let path = (directory as NSString).appendingPathComponent(Self.fileName())
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ServeError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(descriptor)
            throw ServeError("another ktd already serves \(directory)\(holder.map { $0.isEmpty ? "" : " (process \($0))" } ?? ""). "
                             + "Stop it first, or give this one another data directory with --data. "
                             + "(Several ktd processes can share one store on PostgreSQL, not on SQLite.)")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = pid.withCString { write(descriptor, $0, strlen($0)) }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }
}

/// A failure of `ktd serve` after its options were understood (exit 1, no usage line).
struct ServeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
