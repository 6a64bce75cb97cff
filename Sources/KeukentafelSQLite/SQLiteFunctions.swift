import CSQLite
import KeukentafelProtocol

/// The result of a custom SQL function: a value, or an error message that aborts the statement.
public enum SQLFunctionResult {
    case value(CellValue)
    case error(String)
}

private final class FunctionBox {
    let body: ([CellValue]) -> SQLFunctionResult
    init(_ body: @escaping ([CellValue]) -> SQLFunctionResult) { self.body = body }
}

extension SQLiteConnection {
    /// Registers a scalar SQL function implemented in Swift, e.g. the replica's `kt_tick()`.
    ///
    /// `deterministic` lets SQLite use it in indexes and factor calls out; leave it `false` for
    /// functions with side effects such as ticking a clock.
    public func createFunction(_ name: String, argumentCount: Int32, deterministic: Bool = false,
                               _ body: @escaping ([CellValue]) -> SQLFunctionResult) throws {
        let box = Unmanaged.passRetained(FunctionBox(body)).toOpaque()
        let flags = SQLITE_UTF8 | (deterministic ? SQLITE_DETERMINISTIC : 0)
        let rc = sqlite3_create_function_v2(
            handle, name, argumentCount, flags, box,
            { context, argc, argv in
                let box = Unmanaged<FunctionBox>.fromOpaque(sqlite3_user_data(context)!).takeUnretainedValue()
                var arguments: [CellValue] = []
                arguments.reserveCapacity(Int(argc))
                var invalidText = false
                for i in 0..<Int(argc) {
                    let value = argv![i]
                    switch sqlite3_value_type(value) {
                    case SQLITE_NULL: arguments.append(.null)
                    case SQLITE_INTEGER: arguments.append(.integer(sqlite3_value_int64(value)))
                    case SQLITE_FLOAT: arguments.append(.real(sqlite3_value_double(value)))
                    default:
                        if let pointer = sqlite3_value_text(value) {
                            let count = Int(sqlite3_value_bytes(value))
                            if let text = String(validating: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self) {
                                arguments.append(.text(text))
                            } else {
                                invalidText = true
                                arguments.append(.null)
                            }
                        } else {
                            arguments.append(.null)
                        }
                    }
                }
                if invalidText {
                    sqlite3_result_error(context, "keukentafel: text is not valid UTF-8 [invalid_value]", -1)
                    return
                }
                switch box.body(arguments) {
                case .value(.null): sqlite3_result_null(context)
                case .value(.integer(let v)): sqlite3_result_int64(context, v)
                case .value(.real(let v)): sqlite3_result_double(context, v)
                case .value(.text(let v)): sqlite3_result_text(context, v, -1, kt_sqlite_transient())
                case .error(let message): sqlite3_result_error(context, message, -1)
                }
            },
            nil, nil,
            { pointer in
                if let pointer { Unmanaged<FunctionBox>.fromOpaque(pointer).release() }
            })
        if rc != SQLITE_OK { throw error(rc, sql: nil) }
    }
}
