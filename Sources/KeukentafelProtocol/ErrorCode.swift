/// Stable error codes. Clients switch on these; never rename one, only add.
public enum ErrorCode: String, Codable, Sendable, CaseIterable {
    // Request level
    case badRequest = "bad_request"
    case malformedJSON = "malformed_json"
    case unauthorized = "unauthorized"
    case tokenRevoked = "token_revoked"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case requestTooLarge = "request_too_large"
    case unsupportedMediaType = "unsupported_media_type"
    case batchTooLarge = "batch_too_large"
    case internalError = "internal_error"
    case unavailable = "unavailable"

    // Change level
    case unknownTable = "unknown_table"
    case unknownColumn = "unknown_column"
    case invalidRowID = "invalid_row_id"
    case invalidValue = "invalid_value"
    case valueTooLong = "value_too_long"
    case clockAhead = "clock_ahead"
    case invalidChangeID = "invalid_change_id"
    case changeIDReused = "change_id_reused"
    case upgradeRequired = "upgrade_required"
    case immutableCell = "immutable_cell"
}
