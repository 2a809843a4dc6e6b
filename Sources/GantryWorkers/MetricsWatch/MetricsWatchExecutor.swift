import Foundation
import GantryCore
import GantryHTTP

/// The `metrics-watch` kind: watches a service's metrics for a while after a
/// deployment and fails the step (and so the run, and its rollback) when they
/// go wrong — an Argo-Rollouts-style analysis.
///
/// ```yaml
/// with:
///   provider: { prometheus: { url: "http://prometheus:9090" } }   # PromQL over the HTTP API
///   # provider: { scrape: { url: "http://127.0.0.1:8300/metrics" } }   # or the service's own /metrics
///   duration: 5m          # how long to watch
///   interval: 30s         # one measurement of every metric per interval
///   failure_limit: 1      # fail once a metric failed more than this many times
///   inconclusive_limit: 2 # and when it could not be judged more than this many times
///   metrics:
///     - name: error-rate
///       query: 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'
///       success: "result < 0.01"
///     - { name: p99, query: "…", failure: "result > 0.5" }
/// ```
/// With `scrape`, a query is a selector or `rate(selector)` combined with
/// `+ - * /` (see `Exposition`); rates are computed between consecutive scrapes.
/// Conditions are `MetricCondition`s, checked when the pipeline is validated.
/// Outputs: per metric (`metrics`) the counts of successful, failed and
/// inconclusive measurements and the last value; `measurements`.
public struct MetricsWatchExecutor: StepExecutor {
    public let kind = "metrics-watch"

    public init() {}

    enum Provider {
        case prometheus(String)
        case scrape(String)
    }

    struct Watched {
        var metric: MetricAnalysis.Metric
        var promQL: String?
        var scrape: ScrapeQuery?
    }

    public func execute(_ context: StepContext) async throws -> StepOutputs {
        let inputs = try context.decodeInputs(MetricsWatchInputs.self)
        let provider = try Self.provider(inputs.provider)
        let duration = inputs.duration ?? .seconds(300)
        let interval = inputs.interval ?? .seconds(30)
        guard interval > .zero else { throw StepFailure("with.interval must be more than 0s", retryable: false) }
        let watched = try Self.metrics(inputs.metrics, provider: provider)
        var analysis = MetricAnalysis(
            metrics: watched.map(\.metric),
            failureLimit: inputs.failureLimit ?? 0,
            inconclusiveLimit: inputs.inconclusiveLimit ?? 1
        )
        let measurements = max(1, Int(duration / interval))
        let client = HTTPClient(name: "gantry-metrics")
        context.log.write("watching \(watched.count) metric\(watched.count == 1 ? "" : "s") for \(DurationParser.format(duration)): \(measurements) measurements, one every \(DurationParser.format(interval))")

        var previous: (exposition: Exposition, at: ContinuousClock.Instant)?
        if case .scrape(let url) = provider {
            // A first scrape, so that the first measurement already has a rate.
            previous = try? await (Self.scrape(url, client), ContinuousClock.now)
        }
        var done = 0
        for index in 1...measurements {
            try await Task.sleep(for: interval)
            var values: [String: Double?] = [:]
            switch provider {
            case .prometheus(let url):
                for item in watched {
                    do {
                        values[item.metric.name] = try await Self.prometheus(url, query: item.promQL!, client)
                    } catch {
                        context.log.write("\(item.metric.name): \(error)")
                        values[item.metric.name] = .some(nil)
                    }
                }
            case .scrape(let url):
                do {
                    let now = ContinuousClock.now
                    let current = try await Self.scrape(url, client)
                    let seconds = previous.map { Double((now - $0.at).milliseconds) / 1_000 } ?? 0
                    for item in watched {
                        let missing = item.scrape!.missing(in: current)
                        if !missing.isEmpty { context.log.write("\(item.metric.name): \(url) has no metric \(missing.joined(separator: ", "))") }
                        values[item.metric.name] = item.scrape!.evaluate(current: current, previous: previous?.exposition, seconds: seconds)
                    }
                    previous = (current, now)
                } catch {
                    context.log.write("scrape of \(url) failed: \(error)")
                    for item in watched { values[item.metric.name] = .some(nil) }
                }
            }
            done = index
            for item in watched {
                let value = values[item.metric.name] ?? nil
                let (judgement, verdict) = analysis.record(item.metric, value: value)
                context.log.write("[\(index)/\(measurements)] \(item.metric.name) = \(MetricAnalysis.format(value)): \(judgement.rawValue)")
                switch verdict {
                case .running, .passed: break
                case .failed(let reason):
                    throw StepFailure("metrics watch failed after \(index) of \(measurements) measurements: \(reason)", retryable: false)
                case .inconclusive(let reason):
                    throw StepFailure("metrics watch inconclusive after \(index) of \(measurements) measurements: \(reason)", retryable: false)
                }
            }
        }
        var results: [JSONValue] = []
        for item in watched {
            let tally = analysis.tallies[item.metric.name] ?? MetricAnalysis.Tally()
            results.append(.object([
                "name": .string(item.metric.name), "successful": .number(Double(tally.successful)),
                "failed": .number(Double(tally.failed)), "inconclusive": .number(Double(tally.inconclusive)),
                "last": tally.last.flatMap { $0.isNaN ? nil : JSONValue.number($0) } ?? .null,
            ]))
        }
        context.log.write("metrics watch passed: \(done) measurements")
        return ["metrics": .array(results), "measurements": .number(Double(done))]
    }

    // MARK: Inputs

    static func provider(_ provider: MetricsWatchInputs.Provider) throws -> Provider {
        switch (provider.prometheus?.url, provider.scrape?.url) {
        case (let url?, nil) where url.hasPrefix("http://") || url.hasPrefix("https://"):
            return .prometheus(url.hasSuffix("/") ? String(url.dropLast()) : url)
        case (nil, let url?) where url.hasPrefix("http://") || url.hasPrefix("https://"):
            return .scrape(url)
        default:
            throw StepFailure("with.provider: give { prometheus: { url: http://… } } or { scrape: { url: http://…/metrics } }", retryable: false)
        }
    }

    static func metrics(_ metrics: [MetricsWatchInputs.Metric], provider: Provider) throws -> [Watched] {
        guard !metrics.isEmpty else {
            throw StepFailure("with.metrics: give at least one { name, query, success or failure }", retryable: false)
        }
        return try metrics.enumerated().map { index, written in
            let name = written.name ?? "metric \(index + 1)"
            let query = written.query
            guard !query.isEmpty else {
                throw StepFailure("with.metrics[\(index)].query: give the query", retryable: false)
            }
            func condition(_ key: String, _ text: String?) throws -> MetricCondition? {
                guard let text else { return nil }
                do { return try MetricCondition(text) } catch {
                    throw StepFailure("with.metrics[\(index)].\(key) '\(text)': \(error)", retryable: false)
                }
            }
            let metric = MetricAnalysis.Metric(
                name: name, success: try condition("success", written.success), failure: try condition("failure", written.failure)
            )
            guard metric.success != nil || metric.failure != nil else {
                throw StepFailure("with.metrics[\(index)]: give success or failure (a condition on result)", retryable: false)
            }
            switch provider {
            case .prometheus:
                return Watched(metric: metric, promQL: query, scrape: nil)
            case .scrape:
                do {
                    return Watched(metric: metric, promQL: nil, scrape: try ScrapeQuery(query))
                } catch {
                    throw StepFailure("with.metrics[\(index)].query '\(query)': \(error)", retryable: false)
                }
            }
        }
    }

    // MARK: Providers

    /// The value of an instant query: a scalar, or a vector's single sample (several
    /// samples are summed; none is no value).
    static func prometheus(_ base: String, query: String, _ client: HTTPClient) async throws -> Double? {
        let url = "\(base)/api/v1/query?query=\(PercentEncoding.encode(query))"
        let response = try await client.send(HTTPRequest(url: url, timeout: .seconds(10)))
        guard let document = JSONValue.parseObject(response.text) else {
            throw StepFailure("Prometheus answered \(response.status) with no JSON")
        }
        guard response.status == 200, document["status"]?.stringValue == "success",
              case .object(let data)? = document["data"] else {
            throw StepFailure("Prometheus refused the query: \(document["error"]?.stringValue ?? "status \(response.status)")")
        }
        func number(_ pair: JSONValue?) -> Double? {
            guard case .array(let items)? = pair, items.count == 2, let text = items[1].stringValue else { return nil }
            return Exposition.parseValue(text)
        }
        switch (data["resultType"]?.stringValue, data["result"]) {
        case ("scalar", let pair): return number(pair)
        case ("vector", .array(let samples)?):
            let values = samples.compactMap { sample -> Double? in
                guard case .object(let fields) = sample else { return nil }
                return number(fields["value"])
            }
            return values.isEmpty ? nil : values.reduce(0, +)
        case (let type, _):
            throw StepFailure("the query returns a \(type ?? "?"), not a number; aggregate it (sum, avg, max …)")
        }
    }

    static func scrape(_ url: String, _ client: HTTPClient) async throws -> Exposition {
        let response = try await client.send(HTTPRequest(url: url, timeout: .seconds(10)))
        guard response.status == 200 else { throw StepFailure("\(url) answered \(response.status)") }
        do {
            return try Exposition.parse(response.text)
        } catch {
            throw StepFailure("\(url) is not a Prometheus exposition: \(error)")
        }
    }
}
