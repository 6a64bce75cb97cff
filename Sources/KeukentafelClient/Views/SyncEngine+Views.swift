import Foundation
import KeukentafelProtocol

extension SyncEngine {
    /// Sends the views recorded since the last sync (decision 0030), in batches, oldest first. The
    /// server stores them even when it flags them; they are marked sent once it says so.
    func sendViews(into report: inout SyncReport) throws {
        while true {
            let entries = try replica.unsentViews(limit: Self.viewBatchSize)
            guard let last = entries.last else { return }
            let receipt: ViewReceipt = try call("POST", "/v1/views", body: try JSONEncoder().encode(ViewBatch(entries: entries)))
            try replica.markViewsSent(through: receipt.through)
            report.viewsSent += entries.filter { $0.seq <= receipt.through }.count
            report.viewsFlagged += receipt.flagged.count
            guard receipt.through >= last.seq, entries.count == Self.viewBatchSize else { return }
        }
    }

    static let viewBatchSize = 2_000
}
