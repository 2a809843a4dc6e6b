import GantryCore

/// A step as the steps table holds it: its identity, how to run it, where it sits
/// in its pipeline, and its state.
public struct StepRecord: Sendable, Equatable {
    public var key: StepKey
    public var kind: String
    public var timeout: Duration
    public var inputs: String
    public var state: StepState
    public var section: RunState.Section
    /// Its place among the steps of its section, in the order written.
    public var position: Int
    public var needs: [String]
    /// Set for an approval gate.
    public var approval: RunState.Approval?
    public var approvalDeadlineMs: Int64?
    public var approvers: [String]
    public var skipReason: String?
    /// Skipped by `when.paths` or `if:` (its dependents still run).
    public var skippedByFilter: Bool
    /// Values of its `${{ }}` expressions, a JSON object as text.
    public var bindings: String
    /// The worker pool of its run's environment; nil: the default pool.
    public var pool: String?

    public init(
        key: StepKey, kind: String, timeout: Duration, inputs: String, state: StepState,
        section: RunState.Section = .main, position: Int = 0, needs: [String] = [], approval: RunState.Approval? = nil,
        approvalDeadlineMs: Int64? = nil, approvers: [String] = [], skipReason: String? = nil, skippedByFilter: Bool = false,
        bindings: String = "{}", pool: String? = nil
    ) {
        self.pool = pool
        self.key = key
        self.kind = kind
        self.timeout = timeout
        self.inputs = inputs
        self.state = state
        self.section = section
        self.position = position
        self.needs = needs
        self.approval = approval
        self.approvalDeadlineMs = approvalDeadlineMs
        self.approvers = approvers
        self.skipReason = skipReason
        self.skippedByFilter = skippedByFilter
        self.bindings = bindings
    }

    /// The job for attempt `attempt` of this step.
    public func job(attempt: Int, nowUs: Int64, recovered: Bool = false) -> Job {
        Job(
            runID: key.runID, stepID: key.stepID, attempt: attempt, kind: Identifiers.queueKind(kind, pool: pool),
            timeout: timeout, inputs: inputs, enqueuedAtUs: nowUs, recovered: recovered, bindings: bindings
        )
    }

    /// The step as the RunMachine sees it.
    var machineStep: RunState.Step {
        let lifecycle: RunState.Lifecycle
        var attempts = state
        switch state.status {
        case .pending: lifecycle = .pending
        case .awaitingApproval:
            lifecycle = .awaitingApproval(approvers: approvers, required: approval?.required ?? 1, deadlineMs: approvalDeadlineMs ?? .max)
        case .queued, .retrying: lifecycle = .active
        case .succeeded: lifecycle = .succeeded
        case .failed: lifecycle = .failed
        case .canceled: lifecycle = .canceled
        case .skipped: lifecycle = .skipped(skipReason ?? "skipped", byFilter: skippedByFilter)
        }
        if !lifecycle.isActive && !state.status.isTerminal { attempts.status = .queued }
        return RunState.Step(section: section, needs: needs, approval: approval, lifecycle: lifecycle, attempts: attempts)
    }

    /// Takes the RunMachine's view of the step back into the record.
    mutating func update(from step: RunState.Step) {
        state = step.attempts
        switch step.lifecycle {
        case .pending:
            state.status = .pending
        case .active:
            break
        case .awaitingApproval(let approvers, _, let deadline):
            state.status = .awaitingApproval
            self.approvers = approvers
            approvalDeadlineMs = deadline
        case .succeeded:
            state.status = .succeeded
        case .failed:
            state.status = .failed
        case .canceled:
            state.status = .canceled
        case .skipped(let reason, let byFilter):
            state.status = .skipped
            skipReason = reason
            skippedByFilter = byFilter
        }
        // A gate keeps its deadline once decided (the view shows when it timed out, and which
        // decisions belong to its last round); a step sent back to pending (a retry) loses it.
        if step.lifecycle == .pending { approvalDeadlineMs = nil }
        if case .skipped = step.lifecycle {} else if step.lifecycle != .pending { skipReason = nil; skippedByFilter = false }
    }

    static let selectList = """
        s.run_id, s.step_id, s.kind, s.status, s.attempt, s.charged, s.retry, s.timeout_ms, s.inputs,
        s.due_at_ms, s.last_error, s.section, s.position, s.needs, s.approval_required, s.approval_timeout_ms,
        s.approval_deadline_ms, s.approvers, s.skip_reason, s.skipped_by_filter, s.bindings, s.pool
        """

    /// The positions of the `selectList` columns in a result, found once per result
    /// (rows are read on the dispatcher's hot path).
    struct Columns {
        let runID, stepID, kind, status, attempt, charged, retry, timeoutMs, inputs, dueAtMs, lastError: Int
        let section, position, needs, approvalRequired, approvalTimeoutMs, approvalDeadlineMs, approvers: Int
        let skipReason, skippedByFilter, bindings, pool: Int

        init(_ rows: PostgresRows) {
            runID = rows.column("run_id"); stepID = rows.column("step_id"); kind = rows.column("kind")
            status = rows.column("status"); attempt = rows.column("attempt"); charged = rows.column("charged")
            retry = rows.column("retry"); timeoutMs = rows.column("timeout_ms"); inputs = rows.column("inputs")
            dueAtMs = rows.column("due_at_ms"); lastError = rows.column("last_error"); section = rows.column("section")
            position = rows.column("position"); needs = rows.column("needs"); approvalRequired = rows.column("approval_required")
            approvalTimeoutMs = rows.column("approval_timeout_ms"); approvalDeadlineMs = rows.column("approval_deadline_ms")
            approvers = rows.column("approvers"); skipReason = rows.column("skip_reason")
            skippedByFilter = rows.column("skipped_by_filter"); bindings = rows.column("bindings"); pool = rows.column("pool")
        }
    }

    /// Reads a row; `policies` caches parsed retry policies by their text, since the
    /// steps of a batch almost always share a few.
    init?(_ row: PostgresRow, _ c: Columns, policies: inout [String: RetryPolicy]) {
        guard let run = row.string(at: c.runID), let step = row.string(at: c.stepID), let kind = row.string(at: c.kind),
              let status = row.string(at: c.status).flatMap(StepStatus.init(rawValue:)),
              let attempt = row.int(at: c.attempt), let charged = row.int(at: c.charged),
              let policyText = row.string(at: c.retry),
              let timeoutMs = row.int64(at: c.timeoutMs),
              let section = row.string(at: c.section).flatMap(RunState.Section.init(rawValue:))
        else { return nil }
        let policy: RetryPolicy
        if let cached = policies[policyText] {
            policy = cached
        } else {
            guard let parsed = JSONValue.parse(policyText).flatMap(RetryPolicy.init(json:)) else { return nil }
            policies[policyText] = parsed
            policy = parsed
        }
        var approval: RunState.Approval?
        if let required = row.int(at: c.approvalRequired) {
            approval = RunState.Approval(required: required, timeout: .milliseconds(row.int64(at: c.approvalTimeoutMs) ?? 86_400_000))
        }
        let needs = row.string(at: c.needs) ?? "{}"
        let approvers = row.string(at: c.approvers) ?? "{}"
        self.init(
            key: StepKey(runID: run, stepID: step), kind: kind, timeout: .milliseconds(timeoutMs),
            inputs: row.string(at: c.inputs) ?? "{}",
            state: StepState(
                status: status, attempt: attempt, charged: charged, policy: policy,
                dueAtMs: row.int64(at: c.dueAtMs), lastError: row.string(at: c.lastError)
            ),
            section: section, position: row.int(at: c.position) ?? 0,
            needs: needs == "{}" ? [] : PostgresArray.parse(needs),
            approval: approval, approvalDeadlineMs: row.int64(at: c.approvalDeadlineMs),
            approvers: approvers == "{}" ? [] : PostgresArray.parse(approvers),
            skipReason: row.string(at: c.skipReason), skippedByFilter: row.bool(at: c.skippedByFilter) ?? false,
            bindings: row.string(at: c.bindings) ?? "{}", pool: row.string(at: c.pool)
        )
    }

    /// Reads every row of a result.
    static func all(_ rows: PostgresRows) -> [StepRecord] {
        guard !rows.isEmpty else { return [] }
        let columns = Columns(rows)
        var policies: [String: RetryPolicy] = [:]
        return (0..<rows.count).compactMap { StepRecord(rows[$0], columns, policies: &policies) }
    }
}

extension RunState.Lifecycle {
    var isActive: Bool { self == .active }
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
