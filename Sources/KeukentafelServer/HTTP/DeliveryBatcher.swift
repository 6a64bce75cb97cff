import Foundation

/// Notes what pulls sent (`Delivery`) in as few transactions as the store can keep up with (issue 23):
/// a push that wakes five thousand long-polls would otherwise take the store's writer five thousand
/// times, one device after another. A pull waits, without holding a thread, until its delivery is
/// committed, and only then is its page sent: the audit's "who received this" never misses a page a
/// device got. Whatever arrives while one batch is being written goes in the next (group commit).
final class DeliveryBatcher: @unchecked Sendable {
    private let store: any SyncStore
    private let lock = NSLock()
    private var pending: [(delivery: Delivery, done: CheckedContinuation<Void, any Error>)] = []
    private var writing = false
    private var batches = 0

    init(store: any SyncStore) { self.store = store }

    /// Returns once `delivery` is committed (with the others of its batch), or throws what the store threw.
    func record(_ delivery: Delivery) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            let startWriting = lock.withLock { () -> Bool in
                pending.append((delivery, done))
                guard !writing else { return false }
                writing = true
                return true
            }
            if startWriting { Task { await self.writeBatches() } }
        }
    }

    /// Transactions begun so far (for tests: fewer than the deliveries when many pulls answer at once).
    var transactions: Int { lock.withLock { batches } }

    /// Deliveries waiting for the next transaction (for tests).
    var queued: Int { lock.withLock { pending.count } }

    /// Writes what is pending, batch after batch, until nothing is.
    private func writeBatches() async {
        while true {
            let batch = lock.withLock { () -> [(delivery: Delivery, done: CheckedContinuation<Void, any Error>)] in
                let batch = pending
                pending.removeAll(keepingCapacity: true)
                if batch.isEmpty { writing = false } else { batches += 1 }
                return batch
            }
            guard !batch.isEmpty else { return }
            let deliveries = batch.map(\.delivery)
            let store = self.store
            do {
                try await blocking { try store.record(deliveries) }
                for entry in batch { entry.done.resume() }
            } catch {
                // One device's delivery must not fail the others' pulls: each on its own, then.
                for entry in batch {
                    let delivery = entry.delivery
                    do {
                        try await blocking { try store.record([delivery]) }
                        entry.done.resume()
                    } catch {
                        entry.done.resume(throwing: error)
                    }
                }
            }
        }
    }
}
