import Foundation

/// An Argo-style analysis: one measurement of each metric per interval, each
/// judged successful, failed or inconclusive by the metric's conditions; the
/// watch fails as soon as a metric has failed more than `failureLimit` times
/// (no need to wait once the answer is certain), and ends inconclusive when a
/// metric could not be judged more than `inconclusiveLimit` times.
public struct MetricAnalysis: Sendable {
    public struct Metric: Sendable {
        public var name: String
        public var success: MetricCondition?
        public var failure: MetricCondition?

        public init(name: String, success: MetricCondition?, failure: MetricCondition?) {
            self.name = name
            self.success = success
            self.failure = failure
        }
    }

    public enum Judgement: String, Sendable, Equatable {
        case successful, failed, inconclusive
    }

    public enum Verdict: Sendable, Equatable {
        case running
        case passed
        case failed(String)
        case inconclusive(String)
    }

    public struct Tally: Sendable, Equatable {
        public var successful = 0
        public var failed = 0
        public var inconclusive = 0
        public var last: Double?

        public init(successful: Int = 0, failed: Int = 0, inconclusive: Int = 0, last: Double? = nil) {
            self.successful = successful
            self.failed = failed
            self.inconclusive = inconclusive
            self.last = last
        }
    }

    public let metrics: [Metric]
    public let failureLimit: Int
    public let inconclusiveLimit: Int
    public private(set) var tallies: [String: Tally] = [:]

    public init(metrics: [Metric], failureLimit: Int, inconclusiveLimit: Int) {
        self.metrics = metrics
        self.failureLimit = max(0, failureLimit)
        self.inconclusiveLimit = max(0, inconclusiveLimit)
        for metric in metrics { tallies[metric.name] = Tally() }
    }

    /// How one value fares: with both conditions, neither holding is inconclusive;
    /// with one, its opposite is the other outcome. No value (or NaN) is inconclusive.
    public static func judge(_ value: Double?, success: MetricCondition?, failure: MetricCondition?) -> Judgement {
        guard let value, !value.isNaN else { return .inconclusive }
        switch (success, failure) {
        case (let s?, let f?): return s.holds(for: value) ? .successful : f.holds(for: value) ? .failed : .inconclusive
        case (let s?, nil): return s.holds(for: value) ? .successful : .failed
        case (nil, let f?): return f.holds(for: value) ? .failed : .successful
        case (nil, nil): return .successful
        }
    }

    /// Records one measurement of `metric`; the verdict once it is certain, else `.running`.
    public mutating func record(_ metric: Metric, value: Double?) -> (Judgement, Verdict) {
        let judgement = Self.judge(value, success: metric.success, failure: metric.failure)
        var tally = tallies[metric.name] ?? Tally()
        tally.last = value
        switch judgement {
        case .successful: tally.successful += 1
        case .failed: tally.failed += 1
        case .inconclusive: tally.inconclusive += 1
        }
        tallies[metric.name] = tally
        if tally.failed > failureLimit {
            let condition = metric.success.map { "success: \($0)" } ?? metric.failure.map { "failure: \($0)" } ?? ""
            return (judgement, .failed(
                "\(metric.name) failed \(tally.failed) measurement\(tally.failed == 1 ? "" : "s") (failure_limit \(failureLimit)); last value \(Self.format(value)), \(condition)"
            ))
        }
        if tally.inconclusive > inconclusiveLimit {
            return (judgement, .inconclusive(
                "\(metric.name) could not be judged \(tally.inconclusive) times (inconclusive_limit \(inconclusiveLimit)); last value \(Self.format(value))"
            ))
        }
        return (judgement, .running)
    }

    public static func format(_ value: Double?) -> String {
        guard let value else { return "none" }
        if value.isNaN { return "NaN" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.6g", value)
    }
}
