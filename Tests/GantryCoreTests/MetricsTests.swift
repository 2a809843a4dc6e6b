import GantryCore
import Testing

@Suite struct MetricConditionTests {
    @Test(arguments: [
        ("result < 0.01", 0.005, true), ("result < 0.01", 0.01, false),
        ("result <= 0.01", 0.01, true), ("result > 100", 101, true), ("result >= 1e3", 1000, true),
        ("result == 0", 0, true), ("result != 0", 0, false),
        ("result >= 0.95 and result <= 1", 0.97, true), ("result >= 0.95 && result <= 1", 1.2, false),
        ("result < 1 or result > 9", 10, true), ("result < 1 || result > 9", 5, false),
        ("not result > 5", 3, true), ("!(result > 5)", 7, false),
        ("abs(result - 200) < 50", 170, true), ("abs(result - 200) < 50", 260, false),
        ("result * 100 < 5", 0.04, true), ("(result + 1) / 2 > 1", 2, true), ("-result < 0", 1, true),
        ("isNaN(result)", .nan, true), ("not isNaN(result) and result < 1", .nan, false),
        ("result < 1", .nan, false), ("result > 1", .nan, false),
    ])
    func evaluatesAsWritten(text: String, result: Double, expected: Bool) throws {
        #expect(try MetricCondition(text).holds(for: result) == expected, "\(text) with result \(result)")
    }

    @Test(arguments: [
        ("result <", 9, "ends too early"),
        ("result < 0.01 &", 15, "'&' has no meaning here"),
        ("value < 1", 1, "unknown name 'value'; the value is called result"),
        ("0 < result < 1", 12, "comparisons do not chain"),
        ("result", 1, "is a number, not a condition"),
        ("result + 1", 1, "is a number, not a condition"),
        ("(result < 1", 12, "missing ')'"),
        ("result < 1 result", 12, "unexpected 'result'"),
        ("system(1)", 1, "unknown name 'system'"),
        ("system('rm -rf /')", 8, "''' has no meaning here"),
        ("abs result", 1, "abs needs parentheses"),
        ("result < 1.2.3", 10, "'1.2.3' is not a number"),
    ])
    func refusesWithTheColumn(text: String, column: Int, problem: String) {
        do {
            let condition = try MetricCondition(text)
            Issue.record("accepted \(condition)")
        } catch {
            #expect(error.column == column, "\(text): \(error)")
            #expect(error.problem.contains(problem), "\(text): \(error)")
        }
    }
}

@Suite struct ExpositionTests {
    let before = """
        # HELP http_requests_total Requests served.
        # TYPE http_requests_total counter
        http_requests_total{code="200",path="/api"} 1000
        http_requests_total{code="500",path="/api"} 10
        http_requests_total{code="503",path="/health"} 0
        queue_depth{queue="deploys"} 4
        queue_depth{queue="builds"} 2
        """
    let after = """
        http_requests_total{code="200",path="/api"} 1180 1700000000000
        http_requests_total{code="500",path="/api"} 25
        http_requests_total{code="503",path="/health"} 5
        queue_depth{queue="deploys"} 7
        queue_depth{queue="builds"} 1
        label_escapes{v="a\\"b\\\\c\\nd"} +Inf
        """

    @Test func parsesSamplesLabelsAndSpecialValues() throws {
        let exposition = try Exposition.parse(after)
        #expect(exposition.samples.count == 6)
        #expect(exposition.samples[0] == .init(name: "http_requests_total", labels: ["code": "200", "path": "/api"], value: 1180))
        #expect(exposition.samples[5].labels == ["v": "a\"b\\c\nd"] && exposition.samples[5].value == .infinity)
        for bad in ["{code=\"1\"} 1", "metric{code=\"1\" 1", "metric{code=1} 1", "metric", "metric{a=\"x} 1"] {
            #expect(throws: Exposition.ParseError.self, "\(bad)") { try Exposition.parse(bad) }
        }
    }

    @Test func queriesComputeRatesBetweenScrapesAndCurrentSums() throws {
        let previous = try Exposition.parse(before), current = try Exposition.parse(after)
        func value(_ query: String) throws -> Double {
            try ScrapeQuery(query).evaluate(current: current, previous: previous, seconds: 10)
        }
        #expect(try value(#"rate(http_requests_total{code=~"5.."})"#) == 2)        // (15 + 5) / 10
        #expect(try value("rate(http_requests_total)") == 20)                      // 200 / 10
        #expect(try value(#"rate(http_requests_total{code=~"5.."}) / rate(http_requests_total)"#) == 0.1)
        #expect(try value(#"rate(http_requests_total{code!="200", path="/api"})"#) == 1.5)
        #expect(try value(#"rate(http_requests_total{code!~"2..|5.."})"#) == 0)
        #expect(try value("queue_depth") == 8)
        #expect(try value(#"value(queue_depth{queue="deploys"}) * 2 + 1"#) == 15)
        #expect(try abs(value("1 - rate(http_requests_total{code=\"200\"}) / rate(http_requests_total)") - 0.1) < 1e-12)
        // Unknown until a second scrape; unknown metric; division by zero.
        #expect(try ScrapeQuery("rate(http_requests_total)").evaluate(current: current, previous: nil, seconds: 0).isNaN)
        #expect(try value("rate(nope_total)").isNaN)
        #expect(try ScrapeQuery("rate(nope_total) + queue_depth").missing(in: current) == ["nope_total"])
        #expect(try value(#"rate(http_requests_total{code="404"}) / rate(http_requests_total{code="404"})"#).isNaN)
    }

    @Test func aCounterThatWentDownWasResetAndCountsFromZero() throws {
        let previous = try Exposition.parse("jobs_total 500")
        let current = try Exposition.parse("jobs_total 30")
        #expect(try ScrapeQuery("rate(jobs_total)").evaluate(current: current, previous: previous, seconds: 10) == 3)
    }

    @Test(arguments: ["rate(", "rate(x", "x{a=1}", "x{a=\"1\"", "x{=\"1\"}", "x{a==\"1\"} 1", "x +", "x{a=~\"(\"}", "(x"])
    func badQueriesAreRefused(query: String) {
        #expect(throws: ScrapeQuery.ParseError.self, "\(query)") { try ScrapeQuery(query) }
    }
}

@Suite struct MetricAnalysisTests {
    let errorRate = MetricAnalysis.Metric(name: "error-rate", success: try! MetricCondition("result < 0.01"), failure: nil)

    @Test func judgementsFollowWhichConditionsAreGiven() throws {
        let success = try MetricCondition("result < 1"), failure = try MetricCondition("result > 5")
        #expect(MetricAnalysis.judge(0.5, success: success, failure: nil) == .successful)
        #expect(MetricAnalysis.judge(2, success: success, failure: nil) == .failed)
        #expect(MetricAnalysis.judge(2, success: nil, failure: failure) == .successful)
        #expect(MetricAnalysis.judge(6, success: nil, failure: failure) == .failed)
        #expect(MetricAnalysis.judge(3, success: success, failure: failure) == .inconclusive)
        #expect(MetricAnalysis.judge(nil, success: success, failure: failure) == .inconclusive)
        #expect(MetricAnalysis.judge(.nan, success: success, failure: nil) == .inconclusive)
    }

    @Test func failsFastOnceFailuresPassTheLimit() {
        var analysis = MetricAnalysis(metrics: [errorRate], failureLimit: 1, inconclusiveLimit: 5)
        #expect(analysis.record(errorRate, value: 0.001).1 == .running)
        #expect(analysis.record(errorRate, value: 0.2).1 == .running, "one failure is within the limit")
        guard case .failed(let reason) = analysis.record(errorRate, value: 0.3).1 else {
            Issue.record("a second failure must fail the watch")
            return
        }
        #expect(reason == "error-rate failed 2 measurements (failure_limit 1); last value 0.3, success: result < 0.01")
        #expect(analysis.tallies["error-rate"] == MetricAnalysis.Tally(successful: 1, failed: 2, inconclusive: 0, last: 0.3))
    }

    @Test func tooManyUnjudgeableMeasurementsAreInconclusive() {
        var analysis = MetricAnalysis(metrics: [errorRate], failureLimit: 0, inconclusiveLimit: 1)
        #expect(analysis.record(errorRate, value: nil).1 == .running)
        guard case .inconclusive(let reason) = analysis.record(errorRate, value: .nan).1 else {
            Issue.record("a second unjudgeable measurement must end the watch")
            return
        }
        #expect(reason.hasPrefix("error-rate could not be judged 2 times (inconclusive_limit 1)"))
    }
}
