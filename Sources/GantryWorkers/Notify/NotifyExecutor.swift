import Foundation
import GantryCore
import GantryHTTP

/// The `notify` kind: tells people and systems how a run is going.
///
/// ```yaml
/// with:
///   channel: slack | webhook | pagerduty
///   message: "Deployed ${{ run.short_sha }} to ${{ run.environment }}"   # expressions allowed
///   on: [success, failure, rollback]   # outcomes to notify on (default: all, canceled included)
///   severity: critical | error | warning | info   # default: info on success, error otherwise
///   link: "https://gantry.example.com/runs/${{ run.id }}"
///   # slack:     webhook_url: ${{ secrets.SLACK_WEBHOOK }}
///   # webhook:   url: https://…, secret: ${{ secrets.HOOK_SECRET }}
///   # pagerduty: routing_key: ${{ secrets.PD_ROUTING_KEY }}, url (default the Events API v2),
///   #            action: trigger | resolve (default: resolve on success, trigger otherwise)
///   attempts: 4                        # tries on 5xx, 429 (honouring Retry-After) and network errors
/// ```
/// The run's facts (id, pipeline, environment, SHA, outcome, start, failed steps)
/// are bound by the dispatcher for every notify step. The outcome is `success`,
/// `failure`, `canceled`, or `rollback` once a deploy step with `action: rollback`
/// has succeeded. Secrets named in `message` are shown as `***`: a notification
/// never carries a secret value.
///
/// Outputs: `sent` (false when `on:` did not match the outcome), `outcome`,
/// `status` (the receiver's HTTP status) and `tries`.
public struct NotifyExecutor: StepExecutor {
    public let kind = "notify"

    public init() {}

    public func execute(_ context: StepContext) async throws -> StepOutputs {
        let notification = try NotifySpec(context)
        guard notification.wanted else {
            context.log.write("not sent: the run's outcome is \(notification.run.outcome); on: [\(notification.on.joined(separator: ", "))]")
            return ["sent": .bool(false), "outcome": .string(notification.run.outcome)]
        }
        let retry = HTTPRetry(attempts: notification.attempts, initialBackoff: .seconds(1), maxWait: .seconds(60))
        var tries = 1
        // Each try is signed anew: a fresh timestamp, so that a receiver's replay window holds.
        let response = try await retry.send({ try notification.request(now: Date()) }, with: HTTPClient(name: "gantry-notify")) { reason, wait in
            tries += 1
            context.log.write("\(notification.channel.rawValue) answered \(reason); trying again in \(DurationParser.format(wait))")
        }
        let detail = String(response.text.prefix(200)).split(whereSeparator: \.isNewline).joined(separator: " ")
        guard (200...299).contains(response.status) else {
            throw StepFailure(
                "\(notification.channel.rawValue) answered \(response.status)\(detail.isEmpty ? "" : ": \(detail)") after \(tries) \(tries == 1 ? "try" : "tries")",
                retryable: HTTPRetry.isRetryable(status: response.status)
            )
        }
        context.log.write("sent to \(notification.channel.rawValue) (status \(response.status), \(tries) \(tries == 1 ? "try" : "tries"))")
        return [
            "sent": .bool(true), "outcome": .string(notification.run.outcome),
            "status": .number(Double(response.status)), "tries": .number(Double(tries)),
        ]
    }
}

/// A notify step's inputs (`NotifyInputs`), checked, and the request each channel takes.
struct NotifySpec {
    typealias Channel = NotifyInputs.Channel

    /// The run, as the dispatcher bound it.
    struct Run {
        var id, pipeline, environment, sha, ref, submitter, outcome, startedAt: String
        var failedSteps: [String]
    }

    static let pagerDutyEvents = "https://events.pagerduty.com/v2/enqueue"

    var channel: Channel
    var run: Run
    var step: String
    var attempt: Int
    var message: String
    var on: [String]
    var severity: String
    var link: String?
    /// Where the request goes (a secret for Slack webhooks), and the secrets that sign or route it.
    var url: String
    var signingSecret: String?
    var routingKey: String?
    var pagerDutyAction: String
    /// Tries on 5xx, 429 and network errors.
    var attempts: Int

    var wanted: Bool { on.contains(run.outcome) }

    init(_ context: StepContext) throws {
        let inputs = try context.decodeInputs(NotifyInputs.self)
        func required(_ value: String?, _ field: String, _ hint: String) throws -> String {
            guard let value, !value.isEmpty else {
                throw StepFailure("with.\(field): \(hint)", retryable: false)
            }
            if let expression = Expressions.references(in: .string(value)).first {
                throw StepFailure("with.\(field): '${{ \(expression) }}' has no value here", retryable: false)
            }
            return value
        }

        channel = inputs.channel
        let bound = context.bindings
        run = Run(
            id: bound["run.id"] ?? context.job.runID, pipeline: bound["run.pipeline"] ?? "",
            environment: bound["run.environment"] ?? "", sha: bound["run.sha"] ?? "", ref: bound["run.ref"] ?? "",
            submitter: bound["run.submitter"] ?? "", outcome: bound["run.outcome"] ?? "success",
            startedAt: bound["run.started_at"] ?? "",
            failedSteps: (bound["run.failed_steps"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        )
        step = context.job.stepID
        attempt = context.job.attempt
        on = (inputs.on?.items ?? NotifyInputs.Outcome.allCases).map(\.rawValue)

        let defaultMessage = "\(run.pipeline) \(run.outcome) in \(run.environment) at \(run.sha.prefix(7))"
        message = inputs.message ?? defaultMessage
        severity = inputs.severity?.rawValue ?? (run.outcome == "success" ? "info" : "error")
        link = inputs.link

        switch channel {
        case .slack:
            url = try required(inputs.webhookURL, "webhook_url", "give the Slack incoming-webhook URL, e.g. ${{ secrets.SLACK_WEBHOOK }}")
        case .webhook:
            url = try required(inputs.url, "url", "give the URL to POST to")
            signingSecret = try required(inputs.secret, "secret", "give the signing secret, e.g. ${{ secrets.HOOK_SECRET }}; receivers verify X-Gantry-Signature with it")
        case .pagerduty:
            // An empty url (an unset parameter) means PagerDuty's own endpoint.
            url = inputs.url.flatMap { $0.isEmpty ? nil : $0 } ?? NotifySpec.pagerDutyEvents
            routingKey = try required(inputs.routingKey, "routing_key", "give the Events API v2 integration key, e.g. ${{ secrets.PD_ROUTING_KEY }}")
        }
        guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
            throw StepFailure("with.\(channel == .slack ? "webhook_url" : "url"): give an http:// or https:// URL", retryable: false)
        }
        pagerDutyAction = inputs.action?.rawValue ?? (run.outcome == "success" ? "resolve" : "trigger")
        attempts = inputs.attempts ?? 4
    }

    func request(now: Date) throws -> HTTPRequest {
        switch channel {
        case .slack:
            return .text(.post, url, slackPayload.jsonText, timeout: .seconds(15))
        case .webhook:
            let body = webhookPayload(now: now).jsonText
            let timestamp = String(Int64(now.timeIntervalSince1970))
            let delivery = "\(run.id)/\(step)/\(attempt)"
            let signature = WebhookSignature.sign(body: body, timestamp: timestamp, delivery: delivery, secret: signingSecret!)
            return .text(.post, url, body, headers: [
                ("X-Gantry-Timestamp", timestamp),
                ("X-Gantry-Signature", signature),
                ("X-Gantry-Delivery", delivery),
                ("User-Agent", "gantry-notify"),
            ], timeout: .seconds(15))
        case .pagerduty:
            return .text(.post, url, pagerDutyPayload.jsonText, timeout: .seconds(15))
        }
    }

    private var statusWord: String {
        switch run.outcome {
        case "success": "succeeded"
        case "failure": "failed"
        case "rollback": "rolled back"
        default: run.outcome
        }
    }

    /// Block Kit: the message, then the run's facts as fields, then the link.
    var slackPayload: JSONValue {
        var fields: [JSONValue] = [
            field("Environment", run.environment.isEmpty ? "—" : run.environment),
            field("Status", statusWord),
            field("SHA", run.sha.isEmpty ? "—" : "`\(run.sha.prefix(12))`"),
            field("Pipeline", run.pipeline),
        ]
        if let duration = durationText { fields.append(field("Duration", duration)) }
        if !run.failedSteps.isEmpty { fields.append(field("Failed steps", run.failedSteps.joined(separator: ", "))) }
        var blocks: [JSONValue] = [
            .object(["type": .string("section"), "text": .object(["type": .string("mrkdwn"), "text": .string(message)])]),
            .object(["type": .string("section"), "fields": .array(fields)]),
        ]
        var context = "Run `\(run.id)`"
        if let link { context += " · <\(link)|Open in Gantry>" }
        blocks.append(.object([
            "type": .string("context"),
            "elements": .array([.object(["type": .string("mrkdwn"), "text": .string(context)])]),
        ]))
        return .object(["text": .string(message), "blocks": .array(blocks)])
    }

    private func field(_ title: String, _ value: String) -> JSONValue {
        .object(["type": .string("mrkdwn"), "text": .string("*\(title)*\n\(value)")])
    }

    /// The run's facts, the message, and what sent it.
    func webhookPayload(now: Date) -> JSONValue {
        var payload: [String: JSONValue] = [
            "event": .string("run.\(run.outcome)"),
            "message": .string(message),
            "severity": .string(severity),
            "run": runObject,
            "step": .string(step),
            "sent_at": .string(Timestamp.iso8601(ms: Int64(now.timeIntervalSince1970 * 1_000))),
        ]
        if let link { payload["link"] = .string(link) }
        return .object(payload)
    }

    /// Events API v2, deduplicated per run: a later `resolve` closes the incident a `trigger` opened.
    var pagerDutyPayload: JSONValue {
        var event: [String: JSONValue] = [
            "routing_key": .string(routingKey!),
            "event_action": .string(pagerDutyAction),
            "dedup_key": .string("gantry-run-\(run.id)"),
        ]
        if pagerDutyAction == "trigger" {
            event["payload"] = .object([
                "summary": .string(String(message.prefix(1024))),
                "source": .string("gantry/\(run.pipeline)/\(run.environment)"),
                "severity": .string(severity),
                "component": .string(run.pipeline),
                "group": .string(run.environment),
                "class": .string("deployment"),
                "custom_details": runObject,
            ])
            if let link { event["links"] = .array([.object(["href": .string(link), "text": .string("Gantry run")])]) }
        }
        return .object(event)
    }

    private var runObject: JSONValue {
        .object([
            "id": .string(run.id), "pipeline": .string(run.pipeline), "environment": .string(run.environment),
            "sha": .string(run.sha), "ref": .string(run.ref), "submitter": .string(run.submitter),
            "outcome": .string(run.outcome), "started_at": .string(run.startedAt),
            "failed_steps": .array(run.failedSteps.map(JSONValue.string)),
        ])
    }

    private var durationText: String? {
        guard let started = Timestamp.parseISO8601(run.startedAt) else { return nil }
        let seconds = max(0, Int64(Date().timeIntervalSince1970) - started / 1_000)
        return seconds >= 60 ? "\(seconds / 60)m \(seconds % 60)s" : "\(seconds)s"
    }
}
