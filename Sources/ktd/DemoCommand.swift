import ArgumentParser
import Foundation
import KeukentafelProtocol
import KeukentafelTerminal
import KeukentafelServer
import Logging

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load demo data: the fictional people of docs/domain.md, plus a synthetic population of any size.",
        discussion: """
            The demo people have fixed ids (Mevrouw De Vries' case is \(DemoData.deVriesCase); the README
            walkthrough edits it) and loading them twice changes nothing. A synthetic population is
            deterministic for a seed:
              ktd admin demo --data /tmp/kt --cases 100000 --municipalities 4 --teams 8 --seed 7
            """)
    @OptionGroup var store: StoreOptions
    @Option(help: "Synthetic cases to add (each with a household, residents, visits, notes, and often carers and provisions).")
    var cases = 0
    @Option(help: "Municipalities of the synthetic population.") var municipalities = 4
    @Option(help: "Teams of the synthetic population.") var teams = 8
    @Option(help: "Seed of the synthetic population.") var seed: UInt64 = 1
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let serverStore = try store.openStore(creating: true)
        let response = try serverStore.demo.load()
        try serverStore.demo.addUsers(actor: adminActor())
        let applied = response.results.filter { $0.status == .applied }.count
        var synthetic = 0, rejected = 0
        let start = Date()
        if cases > 0 {
            let population = SyntheticPopulation(municipalities: municipalities, teams: teams, cases: cases, seed: seed)
            synthetic = try population.generate(node: serverStore.node, milliseconds: UInt64(Date().timeIntervalSince1970 * 1000)) { batch in
                rejected += try serverStore.push(batch, device: "demo").results.filter { $0.status == .rejected }.count
            }
        }
        let seconds = Date().timeIntervalSince(start)
        if json {
            return try Terminal.printJSON(["demoCells": response.results.count, "demoNew": applied, "syntheticCases": cases,
                                           "syntheticCells": synthetic, "rejected": rejected, "milliseconds": Int(seconds * 1000)])
        }
        print("Demo people: \(response.results.count) cells offered, \(applied) new.")
        if cases > 0 {
            print("Synthetic population: \(cases) cases, \(synthetic) cells in \(String(format: "%.1f", seconds)) s"
                  + " (\(Int(Double(synthetic) / max(seconds, 0.001))) cells/s), \(rejected) rejected.")
        }
    }
}
