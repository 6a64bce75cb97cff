/// Stable error codes. Clients switch on these; never rename one, only add.
public enum ErrorCode: String, Codable, Sendable, CaseIterable {
    // Request level
    case badRequest = "bad_request"
    case malformedJSON = "malformed_json"
    case unauthorized = "unauthorized"
    case tokenRevoked = "token_revoked"
    /// The device was reported lost: the replica deletes itself.
    case deviceLost = "device_lost"
    /// The device's user is disabled or the device has no user.
    case userDisabled = "user_disabled"
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case requestTooLarge = "request_too_large"
    case unsupportedMediaType = "unsupported_media_type"
    case batchTooLarge = "batch_too_large"
    case internalError = "internal_error"
    case unavailable = "unavailable"
    /// The request is not well-formed HTTP (a bad chunk size, a header line the parser refuses).
    case malformedHTTP = "malformed_http"
    /// The device is bound to another replica node, or the node to another device (decision 0017).
    case nodeMismatch = "node_mismatch"
    /// A pull's cursor lies beyond anything the server handed out (decision 0017).
    case cursorAhead = "cursor_ahead"
    /// Too many failed authentications from this address; try again after a minute.
    case tooManyFailures = "too_many_failures"
    /// An uploaded chunk, or a whole attachment, does not have the SHA-256 it was sent with; nothing of it was kept.
    case digestMismatch = "digest_mismatch"
    /// An upload's chunk does not start where the server's copy ends; ask where it stands and go on from there.
    case uploadOffset = "upload_offset"

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
    /// The row is not in the writer's scopes (and was not when the change was written).
    case outOfScope = "out_of_scope"
    /// The writer's role may not change this table or column (partners, reference data).
    case notPermitted = "not_permitted"
    /// The writer's role only reads (auditors).
    case readOnly = "read_only"
    /// The row was erased (AVG) and cannot be written again.
    case rowErased = "row_erased"
    /// An existing row's reference was set to an erased row; that change is refused (the row stays).
    case referenceErased = "reference_erased"
    /// The cell refers to an attachment whose content is not on the server yet: upload it first
    /// (the client does, and sends the change again).
    case attachmentMissing = "attachment_missing"
}
