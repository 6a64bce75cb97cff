import Foundation
import Hummingbird
import KeukentafelProtocol

extension SyncServer {
    /// At most this many view entries per request (a device sends 2,000 at a time).
    static let maxViewEntries = 10_000

    /// `POST /v1/views`: a device's recorded views (decision 0030), checked against its chain and stored.
    func views(_ request: Request, context: SyncRequestContext) async throws -> Response {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "send the views as application/json", status: .unsupportedMediaType)
        }
        let body = try await request.body.collect(upTo: configuration.maxRequestBytes)
        let batch: ViewBatch
        do {
            batch = try JSONDecoder().decode(ViewBatch.self, from: Data(buffer: body))
        } catch {
            throw APIError(.malformedJSON, "the body is not a valid view batch: \(describe(error))")
        }
        guard batch.entries.count <= Self.maxViewEntries else {
            throw APIError(.batchTooLarge, "at most \(Self.maxViewEntries) views per request, got \(batch.entries.count)", status: .contentTooLarge)
        }
        for entry in batch.entries {
            guard store.dataModel.table(named: entry.table) != nil else {
                throw APIError(.unknownTable, "view \(entry.seq): no table '\(entry.table)' in the data model")
            }
            guard entry.seq > 0, !entry.row.isEmpty, entry.row.utf8.count <= 200, entry.purpose.utf8.count <= 800,
                  entry.hash.utf8.count == 64, entry.previous.utf8.count == 64 else {
                throw APIError(.badRequest, "view \(entry.seq): seq, row, purpose, previous or hash out of bounds")
            }
        }
        _ = try context.requireAccess()
        let device = context.device?.id ?? ""
        let receipt = try await blocking { try store.receiveViews(batch.entries, device: device) }
        return try respond(try jsonBytes(receipt), to: request)
    }

    /// `POST /v1/wiped`: a lost device's receipt of its wipe (the only request such a device may make).
    func wiped(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 * 1024)
        let receipt: WipeReceipt
        do {
            receipt = try JSONDecoder().decode(WipeReceipt.self, from: Data(buffer: body))
        } catch {
            throw APIError(.malformedJSON, "the body is not a wipe receipt: \(describe(error))")
        }
        let device = context.device?.id ?? ""
        do {
            try await blocking { try store.confirmWipe(device: device, receipt: receipt) }
        } catch let refusal as StoreRefusal {
            throw APIError(refusal.code, refusal.message, status: .forbidden)  // a device not reported lost
        }
        return try respond(try jsonBytes(["recorded": true]), to: request)
    }
}
