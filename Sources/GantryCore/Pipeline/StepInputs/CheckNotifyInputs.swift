import Foundation

extension StepInputSchemas {
    /// `smoke-test`: HTTP checks against a deployed service (SmokeTestExecutor). Each check is
    /// typed key by key: a misspelt expectation (`expect_stauts`) used to be ignored, leaving a
    /// check that passes on any 200 — a gate silently weakened.
    static let smokeTest = InputSchema([
        .required("checks", .list(.object(CheckNotifyInputs.smokeTestCheck), minCount: 1)),
        // The executor tries each check at least once whatever is written; 0 would read as 1.
        .optional("attempts", .integer(min: 1)),
        // Between attempts of one check; 0s (try again at once) is what the executor allows.
        .optional("interval", .duration(min: Duration.zero)),
    ])

    /// `metrics-watch`: an Argo-style analysis of a service's metrics after a deployment
    /// (MetricsWatchExecutor). The `success`/`failure` conditions are parsed by
    /// `PipelineParser.checkMetricConditions`; here they are text. A scrape query is
    /// parsed here too (`ScrapeQuery`, as the worker will), so that a typo fails the
    /// submit rather than the watch after the deployment it guards.
    static let metricsWatch = InputSchema([
        .required("provider", .object(CheckNotifyInputs.metricsProvider)),
        .optional("duration", .duration()),
        // The executor refuses an interval of 0 (it divides the duration by it).
        .optional("interval", .duration()),
        .optional("failure_limit", .integer(min: 0)),
        .optional("inconclusive_limit", .integer(min: 0)),
        .required("metrics", .list(.object(CheckNotifyInputs.watchedMetric), minCount: 1)),
    ], rules: [
        CheckNotifyInputs.scrapeQueries,
        CheckNotifyInputs.distinctMetricNames,
    ])

    /// `notify`: Slack, a signed webhook or PagerDuty (NotifyExecutor / NotifySpec). What each
    /// channel requires, and the keys only some channels read, are checked by
    /// `CheckNotifyInputs.notifyChannel`: a webhook without `secret` used to be found only on
    /// the worker, at the end of a run, when the notification mattered.
    static let notify = InputSchema([
        .required("channel", .oneOf(CheckNotifyInputs.channels)),
        .optional("message", .text),
        .optional("on", .either([
            .oneOf(CheckNotifyInputs.outcomes),
            // An empty list would never send: the step would succeed and tell no one.
            .list(.oneOf(CheckNotifyInputs.outcomes), minCount: 1),
        ])),
        .optional("severity", .oneOf(NotifyInputs.Severity.words)),
        .optional("link", .url(schemes: ["http", "https"])),
        // slack
        .optional("webhook_url", .url(schemes: ["http", "https"])),
        // webhook and pagerduty; for pagerduty an empty value (an unset parameter) means
        // PagerDuty's own endpoint, so empty text is allowed here and refused for a webhook by the rule.
        .optional("url", .checkedText("a URL (http://… or https://…), or empty for PagerDuty's own endpoint", { url in
            url.isEmpty ? nil : InputSchemaChecker.urlProblem(url, schemes: ["http", "https"])
        })),
        // webhook
        .optional("secret", .text),
        // pagerduty
        .optional("routing_key", .text),
        .optional("action", .oneOf(NotifyInputs.PagerDutyAction.words)),
        .optional("attempts", .integer(min: 1)),
    ], rules: [
        CheckNotifyInputs.textOnly(["message", "secret", "routing_key"]),
        CheckNotifyInputs.notifyChannel,
    ])
}

/// The nested schemas of `smoke-test`, `metrics-watch` and `notify`, and the checks of their
/// inputs that a field's type alone cannot say (each returns the problem, or nil).
private enum CheckNotifyInputs {
    /// One entry of a smoke test's `checks` (SmokeTestExecutor.checks).
    static let smokeTestCheck = InputSchema([
        .optional("name", .text),
        .required("url", .url(schemes: ["http", "https"])),
        // The executor upper-cases the method before it looks it up, so `get` is as good as `GET`.
        .optional("method", .checkedText("GET, HEAD, POST, PUT, PATCH or DELETE", { method in
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].contains(method.uppercased()) ? nil : "use GET, HEAD, POST, PUT, PATCH or DELETE"
        })),
        .optional("headers", .map(CheckNotifyInputs.headerValue, keys: CheckNotifyInputs.headerName)),
        .optional("body", .text),
        .optional("timeout", .duration()),
        .optional("expect_status", .integer(min: 100, max: 599)),
        .optional("expect_body_contains", .text),
        // Dotted paths (`checks.0.name`) to the JSON value expected there, compared as written.
        .optional("expect_json", .map(.any)),
        // Zero could never pass: no response takes 0 ms.
        .optional("max_latency_ms", .integer(min: 1)),
        .optional("follow_redirects", .boolean),
    ], rules: [
        CheckNotifyInputs.textOnly(["name", "body", "expect_body_contains"]),
    ])

    /// A metrics watch's `provider`: exactly one of `prometheus` and `scrape`, each with its `url`.
    static let metricsProvider = InputSchema([
        .optional("prometheus", .object(CheckNotifyInputs.metricsEndpoint)),
        .optional("scrape", .object(CheckNotifyInputs.metricsEndpoint)),
    ], exclusive: [["prometheus", "scrape"]], oneRequired: [["prometheus", "scrape"]])

    /// Where a provider is reached: Prometheus's base URL, or the service's `/metrics`.
    static let metricsEndpoint = InputSchema([
        .required("url", .url(schemes: ["http", "https"])),
    ])

    /// One entry of a metrics watch's `metrics` (MetricsWatchExecutor.metrics).
    static let watchedMetric = InputSchema([
        .optional("name", .text),
        .required("query", .checkedText("a query", { query in
            query.trimmingCharacters(in: .whitespaces).isEmpty ? "give the query" : nil
        })),
        .optional("success", .text),
        .optional("failure", .text),
    ], oneRequired: [["success", "failure"]], rules: [
        CheckNotifyInputs.textOnly(["name", "query"]),
    ])

    static let channels = NotifyInputs.Channel.words
    /// `run.outcome`'s values.
    static let outcomes = NotifyInputs.Outcome.words

    /// Keys that are text to the executor: a plain number, boolean or null written there is
    /// YAML's value, not the text written (`1.10` reads 1.1, `~` is no value at all), so it is
    /// to be quoted: `expect_body_contains: "200"`.
    static func textOnly(_ keys: [String]) -> InputRule {
        InputRule { values in
            let problems = keys.compactMap { key -> String? in
                switch values[key] {
                case .null?:
                    return "\(key) is empty (null); give text or leave \(key) out"
                case let value? where value.isNumberOrBool:
                    return "\(key) must be text, not \(value.jsonText); quote it: \(key): \"\(value.jsonText)\""
                default:
                    return nil
                }
            }
            return problems.isEmpty ? nil : problems.joined(separator: "; ")
        }
    }

    /// A header's name is an HTTP token: it goes into the request as `Name: value`, so a
    /// space, a colon or a line break would make another header or a broken request.
    static let headerName: @Sendable (String) -> String? = { name in
        let punctuation = "!#$%&'*+-.^_`|~"
        let isToken = !name.isEmpty && name.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || punctuation.unicodeScalars.contains(scalar))
        }
        return isToken ? nil : "a header name is ASCII letters, digits and !#$%&'*+-.^_`|~ (no spaces or colons)"
    }

    /// A header's value is one line, for the same reason (any scalar: a number is sent as its text).
    static let headerValue = InputType.checkedText("text on one line", { value in
        value.contains(where: { $0.isNewline }) ? "a header value must be one line" : nil
    })

    /// With the `scrape` provider a query is parsed by the worker (`ScrapeQuery`) before the first
    /// measurement; parsed here as well, with the column of the mistake. (A Prometheus query is
    /// PromQL, which only Prometheus judges.)
    static let scrapeQueries = InputRule { values in
        guard case .object(let provider)? = values["provider"], provider["scrape"] != nil, provider["prometheus"] == nil,
              case .array(let metrics)? = values["metrics"] else { return nil }
        var problems: [String] = []
        for (index, metric) in metrics.enumerated() {
            guard case .object(let fields) = metric, case .string(let query)? = fields["query"],
                  !query.trimmingCharacters(in: .whitespaces).isEmpty, !query.contains("${{") else { continue }
            do {
                _ = try ScrapeQuery(query)
            } catch {
                problems.append("metrics[\(index)].query '\(query.prefix(80))': \(error) (with the scrape provider, a query is a metric selector or rate(selector), combined with + - * / and numbers)")
            }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// The watch keeps each measurement by the metric's name: two metrics of one name would
    /// share one value and one tally, and the first one's query would never be judged.
    static let distinctMetricNames = InputRule { values in
        guard case .array(let metrics)? = values["metrics"] else { return nil }
        var seen: [String: Int] = [:]
        for (index, metric) in metrics.enumerated() {
            guard case .object(let fields) = metric else { continue }
            let name: String
            switch fields["name"] {
            case nil: name = "metric \(index + 1)"
            case .string(let text)? where !text.contains("${{"): name = text
            default: continue
            }
            if let first = seen[name] {
                return "metrics[\(index)] has the name '\(name)' of metrics[\(first)]; measurements are kept by name, so give each metric its own"
            }
            seen[name] = index
        }
        return nil
    }

    /// What each channel of a notify step requires, with the executor's hint for each.
    static let channelNeeds: [String: [(key: String, hint: String)]] = [
        "slack": [("webhook_url", "the Slack incoming-webhook URL, e.g. ${{ secrets.SLACK_WEBHOOK }}")],
        "webhook": [
            ("url", "the URL to POST to"),
            ("secret", "the signing secret, e.g. ${{ secrets.HOOK_SECRET }}; receivers verify X-Gantry-Signature with it"),
        ],
        "pagerduty": [("routing_key", "the Events API v2 integration key, e.g. ${{ secrets.PD_ROUTING_KEY }}")],
    ]

    /// The keys only some channels read: given for another channel they would be ignored.
    static let channelKeys: [(key: String, channels: [String], instead: String)] = [
        ("webhook_url", ["slack"], "a webhook or pagerduty channel posts to url"),
        ("url", ["webhook", "pagerduty"], "a slack channel posts to webhook_url"),
        ("secret", ["webhook"], "only webhook deliveries are signed"),
        ("routing_key", ["pagerduty"], "it is PagerDuty's"),
        ("action", ["pagerduty"], "it is PagerDuty's event action"),
        ("severity", ["webhook", "pagerduty"], "a Slack message shows no severity"),
    ]

    /// A notify step's channel decides which keys it needs (NotifySpec.init refuses a missing or
    /// empty one on the worker) and which it reads at all. A channel written as an expression,
    /// or misspelt (reported by its type), is left to the worker.
    static let notifyChannel = InputRule { values in
        guard case .string(let channel)? = values["channel"], let needed = CheckNotifyInputs.channelNeeds[channel] else { return nil }
        var problems: [String] = []
        for (key, hint) in needed {
            switch values[key] {
            case nil, .null?, .string("")?: problems.append("a \(channel) channel needs \(key): \(hint)")
            default: break
            }
        }
        for (key, channels, instead) in CheckNotifyInputs.channelKeys where values[key] != nil && !channels.contains(channel) {
            problems.append("\(key) is not used by a \(channel) channel (\(instead)); remove it")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
}

private extension JSONValue {
    var isNumberOrBool: Bool {
        switch self {
        case .number, .bool: true
        default: false
        }
    }
}
