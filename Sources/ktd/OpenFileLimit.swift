import Foundation

/// Every long-poll holds a socket, so a region's devices need far more open files than the 1,024 a
/// service gets by default (systemd's soft limit). ktd raises its soft limit to the hard one at start,
/// as servers written in Go do, and logs what it has (`open_files`).
enum OpenFileLimit {
    /// Raises the soft limit on open files to the hard limit; returns the limit now in force.
    static func raise() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return UInt64(limit.rlim_cur)
    }
}
