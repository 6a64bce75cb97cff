import Foundation
import Logging

/// Tells a flood of bad tokens from one address: after `limit` failed authentications within `window`,
/// that address's further failures are answered 429 (`too_many_failures`, "slow down") instead of 401
/// until the window has passed, and the flood is logged once as a warning with the number of
/// failures. A valid token is never refused: many
/// laptops share one NAT address, and one of them with a revoked token must not lock out the others.
/// (Guessing a 256-bit token is hopeless anyway; this is about noise and load.)
final class AuthFailureLimiter: @unchecked Sendable {
    let limit: Int
    let window: Duration
    private let lock = NSLock()
    private var failures: [String: (count: Int, since: ContinuousClock.Instant, warned: Bool)] = [:]

    init(limit: Int = 20, window: Duration = .seconds(60)) {
        self.limit = limit
        self.window = window
    }

    /// Whether `address` may try a token now; logs the start of a refused burst.
    func allows(_ address: String?, logger: Logger) -> Bool {
        guard let address else { return true }
        let now = ContinuousClock.now
        let (allowed, warn, count) = lock.withLock { () -> (Bool, Bool, Int) in
            guard var entry = failures[address] else { return (true, false, 0) }
            if now - entry.since >= window {
                failures[address] = nil
                return (true, false, 0)
            }
            guard entry.count >= limit else { return (true, false, entry.count) }
            let warn = !entry.warned
            entry.warned = true
            failures[address] = entry
            return (false, warn, entry.count)
        }
        if warn {
            logger.warning("too many failed authentications; refusing this address for a while",
                           metadata: ["address": "\(address)", "failures": "\(count)", "seconds": "\(window.components.seconds)"])
        }
        return allowed
    }

    func failed(_ address: String?) {
        guard let address else { return }
        let now = ContinuousClock.now
        lock.withLock {
            if var entry = failures[address], now - entry.since < window {
                entry.count += 1
                failures[address] = entry
            } else {
                failures[address] = (1, now, false)
            }
            if failures.count > 10_000 { failures = failures.filter { now - $0.value.since < window } }  // bounded memory
        }
    }
}
