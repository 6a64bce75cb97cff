import Foundation
import Hummingbird
import KeukentafelProtocol
import Prometheus

/// The server's Prometheus metrics, in a registry of its own (several servers may run in one process,
/// as in tests). Scraped at `GET /metrics`.
public final class ServerMetrics: Sendable {
    /// The metrics, as `/metrics` serves them.
    public let registry = PrometheusCollectorRegistry()
    let pushDuration: DurationHistogram
    let pullDuration: DurationHistogram
    let waiting: Gauge
    let woken: Gauge
    let storeBytes: Gauge
    private let latencyBuckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                              .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
                                              .seconds(5), .seconds(10), .seconds(30)]

    /// The version of ktd, for `kt_build_info`.
    public static let version = "0.1.0"

    /// The server's metrics, registered once.
    public init() {
        // Which build answers, as Prometheus's convention has it: a gauge of 1 with the facts as labels.
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "kt", metricName: "build", unitName: "info",
                                                            helpText: "The ktd build: version and protocol version."),
                           labels: [("version", Self.version), ("protocol", String(SyncServer.protocolVersion))]).set(Double(1))
        pushDuration = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "kt", metricName: "push_duration", unitName: "seconds",
                                             helpText: "Time to apply one push batch, from request to response."),
            buckets: latencyBuckets)
        pullDuration = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "kt", metricName: "pull_duration", unitName: "seconds",
                                             helpText: "Time to answer one pull, long-poll waiting included."),
            buckets: latencyBuckets)
        waiting = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "kt", metricName: "longpolls", unitName: "waiting",
                                                                      helpText: "Pulls currently waiting for news (long-poll)."))
        woken = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "kt", metricName: "longpolls", unitName: "woken",
                                                                    helpText: "Long-polls woken by a push since ktd started: only those of devices that may see something of it."))
        storeBytes = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "kt", metricName: "store", unitName: "bytes",
                                                                         helpText: "Size of the store file and its write-ahead log."))
    }

    static var requestsDescriptor: MetricNameDescriptor { MetricNameDescriptor(namespace: "kt", metricName: "http_requests", unitName: "total",
                                                         helpText: "HTTP requests by route and status.") }
    static var changesDescriptor: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "kt", metricName: "changes", unitName: "total",
                             helpText: "Pushed changes by outcome: applied, superseded, conflict (a conflict record was made), rejected.")
    }

    func request(route: String, status: Int) {
        let key = RequestKey(route: route, status: status)
        let counter = requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(descriptor: Self.requestsDescriptor, labels: [("route", route), ("status", String(status))])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// Routes are the router's endpoint paths and statuses a few, so this stays small; looked up instead
    /// of asking the registry, which builds the labels' key anew on every request.
    private struct RequestKey: Hashable {
        var route: String
        var status: Int
    }
    private let requestCounters = Locked<[RequestKey: Counter]>([:])

    func changes(_ results: [ChangeResult]) {
        var counts: [ChangeStatus: Int64] = [:]
        for result in results { counts[result.status, default: 0] += 1 }
        for (status, count) in counts {
            registry.makeCounter(descriptor: Self.changesDescriptor, labels: [("status", status.rawValue)]).increment(by: count)
        }
    }

    /// The text exposition, with gauges that are read when scraped brought up to date.
    func scrape(store: any SyncStore, notifier: ChangeNotifier) -> [UInt8] {
        waiting.set(Double(notifier.waiting))
        woken.set(Double(notifier.wakeUps))
        storeBytes.set(Double(store.sizeInBytes()))
        return registry.emitToBuffer()
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
