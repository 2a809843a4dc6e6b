/// `metrics-watch`'s `with:` (schema: `StepInputSchemas.metricsWatch`; read by
/// MetricsWatchExecutor). Every value is resolved; the conditions stay text, parsed by
/// `MetricCondition` (at validate by `PipelineParser.checkMetricConditions`, again on the worker).
public struct MetricsWatchInputs: StepInputs {
    public var provider: Provider
    /// How long to watch (default 5m).
    public var duration: Duration?
    /// One measurement of every metric per interval (default 30s).
    public var interval: Duration?
    /// Fail once a metric failed more than this many times (default 0).
    public var failureLimit: Int?
    /// And once it could not be judged more than this many times (default 1).
    public var inconclusiveLimit: Int?
    public var metrics: [Metric]

    public enum CodingKeys: String, InputKey {
        case provider, duration, interval
        case failureLimit = "failure_limit"
        case inconclusiveLimit = "inconclusive_limit"
        case metrics
    }

    public static var nested: [CodingKeys: any StepInputs.Type] { [.provider: Provider.self, .metrics: Metric.self] }

    /// Exactly one of Prometheus's HTTP API and the service's own `/metrics`.
    public struct Provider: StepInputs {
        public var prometheus: Endpoint?
        public var scrape: Endpoint?

        public enum CodingKeys: String, InputKey {
            case prometheus, scrape
        }

        public static var nested: [CodingKeys: any StepInputs.Type] { [.prometheus: Endpoint.self, .scrape: Endpoint.self] }
    }

    /// Where a provider is reached.
    public struct Endpoint: StepInputs {
        public var url: String

        public enum CodingKeys: String, InputKey {
            case url
        }
    }

    /// One watched metric: a query, and a condition on its `result`.
    public struct Metric: StepInputs {
        /// Default `metric N`.
        public var name: String?
        public var query: String
        public var success: String?
        public var failure: String?

        public enum CodingKeys: String, InputKey {
            case name, query, success, failure
        }
    }
}
