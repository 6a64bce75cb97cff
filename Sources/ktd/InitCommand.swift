import ArgumentParser
import Foundation
import KeukentafelServer

/// `ktd admin init`: the explicit way to make a new, empty store (other admin commands refuse a data
/// directory without one).
struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make a new, empty store (then add users and devices to it).",
        discussion: """
            Only this command, `ktd serve`, `ktd admin demo` and `ktd admin restore` create a store; every other admin command refuses a data directory without one, so a mistyped --data is an error. Running it on an existing store changes nothing and says so.

              ktd admin init --data /var/lib/keukentafel --schema Schemas/datamodel.yaml
              ktd admin user add anne --role back-office --data /var/lib/keukentafel
            """)
    @OptionGroup var store: StoreOptions

    func run() async throws {
        let existed = store.postgres == nil && store.hasSQLiteStore
        let serverStore = try store.openStore(creating: true)
        let model = serverStore.dataModel
        let summary = "data model version \(model.version), \(model.tables.count) tables"
        if store.postgres != nil {
            print("Store ready in \(store.storeDescription) (\(summary)).")
            print("Next: ktd admin user add NAME --role ROLE --postgres URL")
        } else {
            print(existed ? "A store exists in \(store.data) already (\(summary)); nothing changed." : "New store in \(store.data) (\(summary)).")
            print("Next: ktd admin user add NAME --role ROLE --data \(store.data)")
        }
    }
}
