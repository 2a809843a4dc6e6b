import GantryCore

/// A step as the steps table holds it: its identity, how to run it, and its state.
public struct StepRecord: Sendable, Equatable {
    public var key: StepKey
    public var kind: String
    public var timeout: Duration
    public var inputs: String
    public var state: StepState

    public init(key: StepKey, kind: String, timeout: Duration, inputs: String, state: StepState) {
        self.key = key
        self.kind = kind
        self.timeout = timeout
        self.inputs = inputs
        self.state = state
    }

    /// The job for attempt `attempt` of this step.
    public func job(attempt: Int, nowUs: Int64, recovered: Bool = false) -> Job {
        Job(
            runID: key.runID, stepID: key.stepID, attempt: attempt, kind: kind,
            timeout: timeout, inputs: inputs, enqueuedAtUs: nowUs, recovered: recovered
        )
    }

    static let selectList = """
        s.run_id, s.step_id, s.kind, s.status, s.attempt, s.charged, s.retry, s.timeout_ms, s.inputs,
        s.due_at_ms, s.last_error
        """

    /// Reads a row; `policies` caches parsed retry policies by their text, since the
    /// steps of a batch almost always share a few.
    init?(_ row: PostgresRow, policies: inout [String: RetryPolicy]) {
        guard let run = row.string("run_id"), let step = row.string("step_id"), let kind = row.string("kind"),
              let status = row.string("status").flatMap(StepStatus.init(rawValue:)),
              let attempt = row.int("attempt"), let charged = row.int("charged"),
              let policyText = row.string("retry"),
              let timeoutMs = row.int64("timeout_ms")
        else { return nil }
        let policy: RetryPolicy
        if let cached = policies[policyText] {
            policy = cached
        } else {
            guard let parsed = JSONValue.parse(policyText).flatMap(RetryPolicy.init(json:)) else { return nil }
            policies[policyText] = parsed
            policy = parsed
        }
        self.init(
            key: StepKey(runID: run, stepID: step), kind: kind, timeout: .milliseconds(timeoutMs),
            inputs: row.string("inputs") ?? "{}",
            state: StepState(
                status: status, attempt: attempt, charged: charged, policy: policy,
                dueAtMs: row.int64("due_at_ms"), lastError: row.string("last_error")
            )
        )
    }

    /// Reads every row of a result.
    static func all(_ rows: PostgresRows) -> [StepRecord] {
        var policies: [String: RetryPolicy] = [:]
        return (0..<rows.count).compactMap { StepRecord(rows[$0], policies: &policies) }
    }
}

/// A run to create with its steps.
public struct NewRun: Sendable {
    public var id: String
    /// The installation (Redis namespace) whose dispatchers own the run.
    public var namespace: String
    public var pipeline: String
    public var submitter: String
    public var steps: [StepRecord]

    public init(id: String, namespace: String, pipeline: String, submitter: String, steps: [StepRecord]) {
        self.id = id
        self.namespace = namespace
        self.pipeline = pipeline
        self.submitter = submitter
        self.steps = steps
    }
}

/// A run's row, for listings.
public struct RunSummary: Sendable, Equatable {
    public var id: String
    public var pipeline: String
    public var status: String
    public var createdAtMs: Int64
    public var finishedAtMs: Int64?
}
