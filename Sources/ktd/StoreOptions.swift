import ArgumentParser
import Foundation
import KeukentafelProtocol
import KeukentafelTerminal
import KeukentafelServer
import Logging

/// Options every command that opens the store shares.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Configuration file (key = value lines; see Tools/ktd.conf.example). Environment: KT_CONFIG. Flags and environment override it.",
        valueName: "file"))
    var config: String?

    @Option(name: .customLong("data"), help: ArgumentHelp(
        "Data directory of the store (created on first start). Environment: KT_DATA. Default: ./keukentafel-data", valueName: "dir"))
    var dataFlag: String?

    @Option(name: .customLong("postgres"), help: ArgumentHelp(
        "Keep the store in PostgreSQL instead of an SQLite file in --data: postgres://USER@HOST:PORT/DATABASE[?sslmode=require] "
            + "(password from PGPASSWORD). Several ktd processes may serve one database. Environment: KT_POSTGRES_URL.",
        valueName: "url"))
    var postgresFlag: String?

    @Option(name: .customLong("schema"), help: ArgumentHelp(
        "Data model (YAML). Environment: KT_SCHEMA. Default: the copy in the data directory, else Schemas/datamodel.yaml found from the working directory or the executable.",
        valueName: "file"))
    var schemaFlag: String?

    /// The configuration file, read and checked (empty without one).
    func configFile() throws -> ConfigFile {
        try ConfigFile.load(config ?? ProcessInfo.processInfo.environment["KT_CONFIG"])
    }

    var data: String { ((try? configFile()) ?? ConfigFile()).value("data", flag: dataFlag) ?? "./keukentafel-data" }
    var schema: String? { ((try? configFile()) ?? ConfigFile()).value("schema", flag: schemaFlag) }
    var postgres: String? { ((try? configFile()) ?? ConfigFile()).value("postgres", flag: postgresFlag) }

    /// Where the store lives, for messages: the data directory or the PostgreSQL URL (without password).
    var storeDescription: String {
        postgres.flatMap { try? PostgresLocation(url: $0).description } ?? data
    }

    /// Loads the data model and keeps a copy in the data directory, so admin commands and later
    /// starts use the model the store was created with.
    func loadDataModel() throws -> DataModel {
        let copy = (data as NSString).appendingPathComponent(DataModelFile.fileName)
        if let schema, !FileManager.default.fileExists(atPath: schema) {
            // A model named and not found is an error: falling back to another model would start a store on the wrong one.
            throw ValidationError("data model '\(schema)' (from --schema, KT_SCHEMA or the configuration file) does not exist")
        }
        let candidates = [schema, copy] + DataModelFile.searchPaths()
        guard let path = candidates.compactMap({ $0 }).first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ValidationError("no data model found; pass --schema FILE (the repository has Schemas/datamodel.yaml)")
        }
        let model: DataModel
        do {
            model = try DataModelFile.load(path: path)
        } catch {
            throw ValidationError("\(error)")
        }
        if path != copy, FileManager.default.fileExists(atPath: copy), let stored = try? DataModelFile.load(path: copy), stored != model {
            // The store was made with another model: only a compatible newer one may replace it.
            let problems = model.evolutionProblems(from: stored)
            guard problems.isEmpty else {
                throw ValidationError("\(path) cannot replace the data model this store uses (v\(stored.version)):\n  "
                                      + problems.joined(separator: "\n  "))
            }
        }
        if path != copy {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            try Data(contentsOf: URL(fileURLWithPath: path)).write(to: URL(fileURLWithPath: copy), options: .atomic)
        }
        return model
    }

    /// Whether the data directory holds an SQLite store.
    var hasSQLiteStore: Bool {
        FileManager.default.fileExists(atPath: (data as NSString).appendingPathComponent(ServerStore.fileName))
    }

    /// Opens the store. Only `creating` commands (`serve`, `admin init`, `admin demo`, `admin restore`)
    /// make a new one; the others refuse a data directory without a store, so that a mistyped `--data`
    /// is an error and not an empty answer from a store made on the spot.
    func openStore(maxClockSkewSeconds: Int = 300, creating: Bool = false) throws -> ServerStore {
        _ = try configFile()  // a broken configuration file is an error, not a silent default
        if !creating, postgres == nil, !hasSQLiteStore {
            let what = FileManager.default.fileExists(atPath: data) ? "'\(data)' holds no Keukentafel store" : "'\(data)' does not exist"
            throw ValidationError("\(what). Name the store's data directory with --data (or KT_DATA, or `data =` in the "
                                  + "configuration file); to make a new store there, run `ktd admin init --data \(data)` or `ktd serve --data \(data)`.")
        }
        let model = try loadDataModel()
        let skew = Int64(maxClockSkewSeconds) * 1000
        if let postgres {
            let location: PostgresLocation
            do { location = try PostgresLocation(url: postgres) } catch { throw ValidationError("--postgres: \(error)") }
            return try ServerStore(postgres: location, dataModel: model, maxClockSkewMilliseconds: skew)
        }
        return try ServerStore(directory: data, dataModel: model, maxClockSkewMilliseconds: skew)
    }
}
