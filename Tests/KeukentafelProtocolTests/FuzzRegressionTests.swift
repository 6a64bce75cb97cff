import Foundation
@testable import KeukentafelProtocol
import Testing

/// Every input the fuzzer found a crash with (Tools/fuzzing/regressions/), and its seed corpus, replayed:
/// decoding never crashes, and what decodes re-encodes to a fixed point.
@Suite struct FuzzRegressionTests {
    static let fuzzing = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Tools/fuzzing")

    static func inputs() throws -> [(target: String, data: Data, seed: Bool)] {
        var found: [(String, Data, Bool)] = []
        let manager = FileManager.default
        for target in ["push", "pull", "version", "merge", "model"] {
            for directory in ["corpus/\(target)"] {
                let url = fuzzing.appendingPathComponent(directory)
                for name in (try? manager.contentsOfDirectory(atPath: url.path)) ?? [] {
                    found.append((target, try Data(contentsOf: url.appendingPathComponent(name)), true))
                }
            }
            let regressions = fuzzing.appendingPathComponent("regressions")
            for name in (try? manager.contentsOfDirectory(atPath: regressions.path)) ?? [] where name.hasPrefix(target + "-") {
                found.append((target, try Data(contentsOf: regressions.appendingPathComponent(name)), false))
            }
        }
        return found
    }

    @Test func replayedInputsDecodeOrAreRefusedAndRoundTrip() throws {
        let inputs = try Self.inputs()
        #expect(inputs.count >= 5, "the seed corpus is there")
        let seeds = inputs.filter { $0.seed && ($0.target == "push" || $0.target == "pull") }
        #expect(seeds.allSatisfy { input in
            input.target == "push" ? (try? input.data.withUnsafeBytes { try FeedCoding.decodePush($0) }) != nil
                : (try? FeedCoding.decodePull(input.data)) != nil
        }, "the seeds are valid messages")
        for (target, data, _) in inputs {
            switch target {
            case "push":
                // A crash input, once fixed, may well be refused; what decodes must round-trip.
                guard let request = try? data.withUnsafeBytes({ try FeedCoding.decodePush($0) }) else { continue }
                let once = FeedCoding.encode(request)
                let again = try once.withUnsafeBytes { try FeedCoding.decodePush($0) }
                #expect(FeedCoding.encode(again) == once)
            case "pull":
                guard let page = try? FeedCoding.decodePull(data) else { continue }
                let once = try FeedCoding.encode(page)
                #expect(try FeedCoding.encode(FeedCoding.decodePull(Data(once))) == once)
            case "version":
                let text = String(decoding: data, as: UTF8.self)
                if let version = CellVersion(text) { #expect(CellVersion(version.description) == version) }
            case "model":
                if let model = try? DataModel(json: data) { #expect(model.scopeDepths() != nil) }
            default:
                break  // merge inputs are random bytes; MergeTests covers the properties exhaustively
            }
        }
    }
}
