import Foundation
import KeukentafelProtocol
import Yams

/// Reads the data model from `Schemas/datamodel.yaml` (or a JSON file of the same shape) and checks it.
public enum DataModelFile {
    /// The file name ktd looks for, and keeps a copy of in its data directory.
    public static let fileName = "datamodel.yaml"

    /// Where `Schemas/datamodel.yaml` may be for a ktd that was not told: above the running executable
    /// (a build in a checkout, an install next to the repository), then the working directory.
    /// The executable is found through `/proc/self/exe`, not `argv[0]`, which is only `ktd` when it
    /// was started from `PATH`.
    public static func searchPaths() -> [String] {
        var paths = ["Schemas/datamodel.yaml"]
        var directory = runningExecutable().deletingLastPathComponent()
        for _ in 0..<5 {
            paths.append(directory.appendingPathComponent("Schemas/datamodel.yaml").path)
            directory = directory.deletingLastPathComponent()
        }
        return paths
    }

    /// The running executable's real path (symbolic links resolved).
    public static func runningExecutable() -> URL {
        if FileManager.default.fileExists(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        }
        return URL(fileURLWithPath: Bundle.main.executablePath ?? CommandLine.arguments[0]).resolvingSymlinksInPath()
    }

    /// Reads and checks the data model in the YAML file at `path`.
    public static func load(path: String) throws -> DataModel {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DataModelError(description: "cannot read data model '\(path)': \(error.localizedDescription)")
        }
        return try parse(data, name: path)
    }

    /// Reads and checks a data model from YAML text.
    public static func parse(_ data: Data, name: String = "data model") throws -> DataModel {
        let model: DataModel
        if name.hasSuffix(".json") {
            return try DataModel(json: data)
        }
        do {
            model = try YAMLDecoder().decode(DataModel.self, from: data)
        } catch let error as DecodingError {
            throw DataModelError(description: "\(name): \(explain(error))")
        } catch {
            throw DataModelError(description: "\(name): not valid YAML: \(error)")
        }
        do {
            try model.check()
        } catch let error as DataModelError {
            throw DataModelError(description: "\(name):\n\(error.description)")
        }
        return model
    }

    /// Says where in the file a decoding error is, in the words of the file (table and column names).
    static func explain(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let context):
            return "at \(path(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "at \(path(context.codingPath)): '\(key.stringValue)' is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "at \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
