import Foundation
import Hummingbird
import KeukentafelProtocol
import KeukentafelServer
import Testing

/// Keeps `Schemas/openapi.json` and the code in agreement: the same routes, the same error codes,
/// and every wire type, encoded by the code, valid against the document's schema (which forbids
/// unknown properties, so a field added on either side alone fails here).
@Suite struct OpenAPIAgreementTests {
    let document: [String: Any]

    init() throws {
        let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("Schemas/openapi.json"))
        document = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    var schemas: [String: Any] { ((document["components"] as? [String: Any])?["schemas"] as? [String: Any]) ?? [:] }

    @Test func routesAreTheDocumentedPaths() throws {
        let directory = try temporaryDirectory()
        let store = try ServerStore(directory: directory, dataModel: try shippedDataModel())
        let server = SyncServer(store: store, configuration: .init())
        let routes = server.makeRouter().routes.map { ($0.method.rawValue, $0.path.description) }
            + server.makeMetricsRouter().routes.map { ($0.method.rawValue, $0.path.description) }  // /healthz is on both
        let served = Set(routes.map { "\($0.0) \($0.1.hasPrefix("/") ? "" : "/")\($0.1)" })
        var documented = Set<String>()
        for (path, operations) in document["paths"] as? [String: Any] ?? [:] {
            for method in (operations as? [String: Any] ?? [:]).keys { documented.insert("\(method.uppercased()) \(path)") }
        }
        #expect(served == documented)
    }

    @Test func errorCodesAndStatusesMatch() {
        let codes = (schemas["ErrorCode"] as? [String: Any])?["enum"] as? [String] ?? []
        #expect(Set(codes) == Set(ErrorCode.allCases.map(\.rawValue)))
        let statuses = (schemas["ChangeStatus"] as? [String: Any])?["enum"] as? [String] ?? []
        #expect(Set(statuses) == Set(ChangeStatus.allCases.map(\.rawValue)))
    }

    @Test func encodedWireTypesMatchTheirSchemas() throws {
        let node = NodeID(rawValue: 0x1234)!
        let version = CellVersion(hlc: 0x01a2_06d7_b9cb_0001, node: node)
        let change = Change(id: "\(node)-1", table: "cases", row: newID(), column: "status", value: .text("plan"), version: version, base: version)
        let conflict = ConflictRecord(id: 1, table: "cases", row: newID(), column: "status", winnerValue: .text("plan"), winnerVersion: version,
                                      winnerDevice: "d1", loserValue: .integer(3), loserVersion: version, loserDevice: "d2", base: version,
                                      rule: "lww", review: true, recordedAt: "2026-11-23T10:00:00.000Z", resolvedAt: "2026-11-23T11:00:00.000Z",
                                      resolvedBy: "office", resolution: "kept winner")
        let samples: [(String, any Encodable)] = [
            ("PushRequest", PushRequest(node: node, schemaVersion: 1, changes: [change, Change(id: "x", table: "t", row: "r", column: "c", value: .null, version: version, base: nil)])),
            ("PushResponse", PushResponse(serverTime: 1, results: [
                ChangeResult(id: "a", status: .applied, won: true), ChangeResult(id: "b", status: .conflict, won: false, conflict: 3),
                ChangeResult(id: "c", status: .rejected, code: .clockAhead, message: "ahead")], resolved: [2],
                refusedResolutions: [RefusedResolution(conflict: 4, code: .notFound, message: "no conflict 4 among those this device may see")])),
            ("PullResponse", PullResponse(cursor: 5, more: false, rows: [FeedRow(table: "cases", row: "r", cells: [
                FeedCell(column: "status", value: .real(1.5), version: version)])], conflicts: [conflict],
                evictions: [RowReference(table: "visits", row: "v")], purges: [RowReference(table: "residents", row: "p")],
                resync: false, epoch: "0123456789abcdef", cursorProof: "00112233445566778899aabbccddeeff", serverTime: 9, schemaVersion: 1)),
            ("AttachmentUpload", AttachmentUpload(sha256: String(repeating: "a", count: 64), size: 3, received: 1, complete: false)),
            ("HelloResponse", HelloResponse(protocolVersion: 1, serverTime: 1, device: "d", user: "fatima", role: "consultant",
                                            scopes: ["team:bergen"], schema: try shippedDataModel())),
            ("ErrorResponse", ErrorResponse(code: .clockAhead, message: "m")),
            ("ViewBatch", ViewBatch(entries: [ViewLog.Entry(seq: 1, at: 2, table: "cases", row: "r", purpose: "p", previous: ViewLog.start,
                                                            hash: String(repeating: "b", count: 64))])),
            ("ViewReceipt", ViewReceipt(through: 3, flagged: [ViewReceipt.Flag(seq: 2, finding: .altered)])),
            ("WipeReceipt", WipeReceipt(keyDestroyed: true, filesDeleted: false, problem: "read-only folder")),
        ]
        for (name, sample) in samples {
            let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(sample), options: [.fragmentsAllowed])
            let problems = validate(json, against: ["$ref": "#/components/schemas/\(name)"], at: name)
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        }
    }

    /// A small JSON Schema checker: enough of the vocabulary the document uses.
    func validate(_ value: Any, against schema: [String: Any], at path: String) -> [String] {
        if let reference = schema["$ref"] as? String {
            let name = String(reference.split(separator: "/").last ?? "")
            guard let target = schemas[name] as? [String: Any] else { return ["\(path): unknown $ref \(reference)"] }
            return validate(value, against: target, at: path)
        }
        if let options = schema["oneOf"] as? [[String: Any]] {
            let matching = options.filter { validate(value, against: $0, at: path).isEmpty }.count
            return matching == 1 ? [] : ["\(path): matches \(matching) oneOf options, not exactly one"]
        }
        if let options = schema["anyOf"] as? [[String: Any]] {
            return options.contains { validate(value, against: $0, at: path).isEmpty } ? [] : ["\(path): matches no anyOf option"]
        }
        var problems: [String] = []
        if let type = schema["type"] as? String, !matches(value, type: type) { return ["\(path): expected \(type), got \(value)"] }
        if let allowed = schema["enum"] as? [String], let text = value as? String, !allowed.contains(text) {
            problems.append("\(path): '\(text)' not in enum")
        }
        if let pattern = schema["pattern"] as? String, let text = value as? String, text.range(of: pattern, options: .regularExpression) == nil {
            problems.append("\(path): '\(text)' does not match \(pattern)")
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for required in schema["required"] as? [String] ?? [] where object[required] == nil {
                problems.append("\(path): missing required '\(required)'")
            }
            for (key, child) in object {
                if let childSchema = properties[key] as? [String: Any] {
                    problems += validate(child, against: childSchema, at: "\(path).\(key)")
                } else if schema["additionalProperties"] as? Bool == false {
                    problems.append("\(path): property '\(key)' is not in the document")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (i, item) in array.enumerated() { problems += validate(item, against: items, at: "\(path)[\(i)]") }
        }
        return problems
    }

    func matches(_ value: Any, type: String) -> Bool {
        switch type {
        case "object": return value is [String: Any]
        case "array": return value is [Any]
        case "string": return value is String
        case "null": return value is NSNull
        case "boolean": return (value as? NSNumber).map(isBool) ?? false
        case "integer": return (value as? NSNumber).map { !isBool($0) && $0.doubleValue == $0.doubleValue.rounded() } ?? false
        case "number": return (value as? NSNumber).map { !isBool($0) } ?? false
        default: return false
        }
    }

    /// JSONSerialization hands out true/false as NSNumbers whose type code is "c".
    func isBool(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }
}
