import Foundation
import KeukentafelProtocol

/// A push request running on a thread of its own, so that the replica's work on the batches before
/// and after it overlaps with the server's work on this one (`SyncEngine.pushAll`).
final class InFlightPush: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<PushResponse, any Error>?

    init(_ request: @escaping @Sendable () throws -> PushResponse) {
        Thread { [self] in
            result = Result { try request() }
            done.signal()
        }.start()
    }

    private var finished = false

    /// The server's answer, once it came; throws what the request threw. May be called again.
    func wait() throws -> PushResponse {
        if !finished {
            done.wait()
            finished = true
        }
        guard let result else { throw CancellationError() }
        return try result.get()
    }
}
