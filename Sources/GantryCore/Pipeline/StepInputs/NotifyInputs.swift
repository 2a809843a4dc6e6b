/// `notify`'s `with:` (schema: `StepInputSchemas.notify`; read by NotifyExecutor's NotifySpec).
/// `message` and `link` are shown to people elsewhere, so a secret in them shows as `***`;
/// the URLs and keys that route or sign the request get their values.
public struct NotifyInputs: StepInputs {
    public var channel: Channel
    /// Default: the pipeline, outcome, environment and short SHA.
    public var message: String?
    /// The outcomes to notify on (default all, canceled included).
    public var on: OneOrMore<Outcome>?
    /// Default info on success, error otherwise.
    public var severity: Severity?
    public var link: String?
    /// slack: the incoming-webhook URL.
    public var webhookURL: String?
    /// webhook: where to POST; pagerduty: the Events API (empty or absent: PagerDuty's own).
    public var url: String?
    /// webhook: the signing secret.
    public var secret: String?
    /// pagerduty: the integration key.
    public var routingKey: String?
    /// pagerduty: default resolve on success, trigger otherwise.
    public var action: PagerDutyAction?
    /// Tries on 5xx, 429 and network errors (default 4).
    public var attempts: Int?

    public enum CodingKeys: String, InputKey {
        case channel, message, on, severity, link
        case webhookURL = "webhook_url"
        case url, secret
        case routingKey = "routing_key"
        case action, attempts

        public var reading: InputReading {
            switch self {
            case .message, .link: .secretsHidden
            default: .resolved
            }
        }
    }

    public enum Channel: String, InputWord {
        case slack, webhook, pagerduty
    }

    /// `run.outcome`'s values.
    public enum Outcome: String, InputWord {
        case success, failure, rollback, canceled
    }

    public enum Severity: String, InputWord {
        case critical, error, warning, info
    }

    public enum PagerDutyAction: String, InputWord {
        case trigger, resolve, acknowledge
    }
}
