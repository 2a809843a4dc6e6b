import GantryCore

/// A pipeline run as the API accepts it, with its gates already planned.
public struct PipelineSubmission: Sendable {
    public var runID: String
    public var namespace: String
    public var definition: PipelineDefinition
    /// The YAML exactly as submitted, and its SHA-256 (hex): what an auditor sees.
    public var definitionText: String
    public var definitionSHA256: String
    public var environment: String?
    public var sha: String
    public var ref: String?
    public var params: [String: String]
    /// The token name that submitted it.
    public var submitter: String
    public var idempotencyKey: String?
    /// Steps the plan skips (`when.paths`, `if:`), with the reason.
    public var skips: [String: String]
    /// Environments the SHA must have succeeded in (the environment's and the file's).
    public var promoteFrom: [String]
    /// The concurrency group as `EnvironmentRules` scoped it.
    public var concurrencyGroup: String?
    /// The worker pool of its environment.
    public var pool: String?

    public init(
        runID: String, namespace: String, definition: PipelineDefinition, definitionText: String, definitionSHA256: String,
        environment: String?, sha: String, ref: String?, params: [String: String], submitter: String,
        idempotencyKey: String?, skips: [String: String], promoteFrom: [String] = [], concurrencyGroup: String? = nil,
        pool: String? = nil
    ) {
        self.runID = runID
        self.namespace = namespace
        self.definition = definition
        self.definitionText = definitionText
        self.definitionSHA256 = definitionSHA256
        self.environment = environment
        self.sha = sha
        self.ref = ref
        self.params = params
        self.submitter = submitter
        self.idempotencyKey = idempotencyKey
        self.skips = skips
        self.promoteFrom = promoteFrom
        self.concurrencyGroup = concurrencyGroup
        self.pool = pool
    }
}

/// Why the store refused a request: the API maps each to a status code.
public struct RunRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// No such run (or step) in this installation.
        case notFound
        /// The run is not in a state where this makes sense (already finished, not waiting for approval …).
        case conflict
        /// The caller may not do this to this run (self-approval).
        case forbidden
        /// A submit gate said no.
        case gate(String)
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }
}

extension RunStore {
    // MARK: Submitting

    /// Creates a pipeline run: checks the promotion gate, queues it behind its
    /// concurrency group or starts it, all in one transaction. The same idempotency
    /// key returns the run it first created (`created` false).
    public func submit(
        _ submission: PipelineSubmission, nowMs: Int64, on db: PostgresConnection
    ) async throws(PostgresError) -> (result: Result<(run: RunRecord, created: Bool), RunRefusal>, effects: Effects) {
        try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) in
            try RunStore.submitInTransaction(submission, nowMs: nowMs, on: db)
        }
    }

    private static func submitInTransaction(
        _ submission: PipelineSubmission, nowMs: Int64, on db: isolated PostgresConnection
    ) throws(PostgresError) -> (result: Result<(run: RunRecord, created: Bool), RunRefusal>, effects: Effects) {
        if let key = submission.idempotencyKey {
            // Two submits with one key serialize here; the second finds the first's run.
            // Keys are scoped to the environment: another environment's key is another key (no
            // squatting on production's keys, and no answer that tells whether one exists there).
            let scope = submission.namespace + "\u{1F}" + (submission.environment ?? "") + "\u{1F}" + key
            try db.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7301560422))", [scope])
            let rows = try db.query(
                "SELECT \(RunRecord.selectList) FROM runs r WHERE r.idempotency_key = $1 AND r.namespace = $2 AND coalesce(r.environment, '') = $3",
                [key, submission.namespace, submission.environment ?? ""]
            )
            if !rows.isEmpty, let existing = RunRecord(rows[0]) {
                // The same request again gets its run; anything else with the key is refused without
                // naming the run (it may be another environment's).
                guard existing.definitionSHA256 == submission.definitionSHA256, existing.sha == submission.sha,
                      existing.submitter == submission.submitter else {
                    return (.failure(RunRefusal(.conflict,
                        "idempotency key \(key.prefix(200)) was already used in \(submission.environment ?? "runs without an environment") for another submit (another pipeline, SHA or submitter); use a new key")), Effects())
                }
                return (.success((existing, false)), Effects())
            }
        }
        for source in submission.promoteFrom {
            let rows = try db.query(
                "SELECT id FROM runs WHERE environment = $1 AND sha = $2 AND status = 'succeeded' AND namespace = $3 LIMIT 1",
                [source, submission.sha, submission.namespace]
            )
            if rows.isEmpty {
                return (.failure(RunRefusal(.gate("promote_from"),
                    "gate promote_from: SHA \(submission.sha) has no succeeded run in \(source); deploy it there first")), Effects())
            }
        }
        var work = RunTransitions(nowMs: nowMs)
        var admitted = true
        if let group = submission.concurrencyGroup {
            let key = RunTransitions.GroupKey(namespace: submission.namespace, group: group)
            try RunTransitions.lockGroup(key, on: db)
            let rows = try db.query(
                "SELECT id, status, environment FROM runs WHERE namespace = $1 AND concurrency_group = $2 AND finished_at IS NULL ORDER BY id",
                [submission.namespace, group]
            )
            let others = (0..<rows.count).compactMap { index -> (id: String, status: String, ownEnvironment: Bool)? in
                guard let id = rows[index].string("id"), let status = rows[index].string("status") else { return nil }
                return (id, status, rows[index].string("environment") == submission.environment)
            }
            if let first = others.first {
                let shown = EnvironmentRules.displayGroup(group, environment: submission.environment)
                switch submission.definition.onBusy {
                case .reject:
                    // A group an admin shares between environments: another environment's run is not named.
                    let holder = first.ownEnvironment ? "run \(first.id)" : "a run of another environment"
                    return (.failure(RunRefusal(.gate("concurrency"),
                        "gate concurrency: group \(shown) is busy with \(holder) (on_busy: reject); submit again when it finishes")), Effects())
                case .cancelPending:
                    // Only the newest submission waits; older waiting ones of its own environment are canceled.
                    let waiting = others.filter { $0.status == "waiting" && $0.ownEnvironment }.map(\.id)
                    try work.load(waiting, on: db)
                    for id in waiting { work.apply(.canceled, to: id) }
                    admitted = !others.contains { $0.status == "running" || ($0.status == "waiting" && !$0.ownEnvironment) }
                case .queue:
                    // First in, first out: behind every run already in the group.
                    admitted = false
                }
            }
        }
        try insert(submission, on: db)
        try work.load([submission.runID], on: db)
        if admitted { work.apply(.submitted(skips: submission.skips), to: submission.runID) }
        try work.admitWaiting(on: db)
        try work.finish(on: db)
        guard let run = work.record(submission.runID) else {
            throw PostgresError.configuration("the run just inserted cannot be read back")
        }
        return (.success((run, true)), work.effects)
    }

    private static func insert(_ submission: PipelineSubmission, on db: isolated PostgresConnection) throws(PostgresError) {
        let definition = submission.definition
        let params = JSONValue.object(submission.params.mapValues(JSONValue.string)).jsonText
        try db.query(
            """
            INSERT INTO runs (id, namespace, pipeline, environment, sha, ref, submitter, idempotency_key, status, params,
                              definition, definition_sha256, phase, outcome, timeout_ms, concurrency_group, pool)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'waiting', $9, $10, $11, 'not_started', 'running', $12, $13, $14)
            """,
            [
                submission.runID, submission.namespace, definition.name, submission.environment, submission.sha, submission.ref,
                submission.submitter, submission.idempotencyKey, params, submission.definitionText, submission.definitionSHA256,
                String(definition.timeout.milliseconds), submission.concurrencyGroup, submission.pool,
            ]
        )
        var steps: [StepRecord] = []
        for (section, list) in [(RunState.Section.main, definition.steps), (.onFailure, definition.onFailure), (.finally, definition.finally)] {
            for (position, step) in list.enumerated() {
                var approval: RunState.Approval?
                if step.kind == "approval" {
                    let required = max(1, step.inputs["required"]?.intValue ?? 1)
                    let timeout = step.inputs["timeout"]?.stringValue.flatMap { try? DurationParser.parse($0) } ?? .seconds(86_400)
                    approval = RunState.Approval(required: required, timeout: timeout)
                }
                let skip = submission.skips[step.id]
                steps.append(StepRecord(
                    key: StepKey(runID: submission.runID, stepID: step.id), kind: step.kind, timeout: step.timeout,
                    inputs: JSONValue.object(step.inputs).jsonText,
                    state: StepState(status: .pending, attempt: 1, policy: step.retry),
                    section: section, position: position, needs: step.needs, approval: approval,
                    skipReason: skip, skippedByFilter: skip != nil, pool: submission.pool
                ))
            }
        }
        try db.query(
            """
            INSERT INTO steps (run_id, step_id, namespace, kind, status, attempt, charged, retry, timeout_ms, inputs,
                               section, position, needs, approval_required, approval_timeout_ms, skip_reason, skipped_by_filter, pool)
            SELECT run_id, step_id, $3, kind, 'pending', 1, 0, retry, timeout_ms, inputs,
                   section, position, needs::text[], approval_required, approval_timeout_ms, skip_reason, skipped_by_filter, $15
            FROM unnest($1::uuid[], $2::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::int[],
                        $10::text[], $11::int[], $12::bigint[], $13::text[], $14::boolean[])
                 AS v(run_id, step_id, kind, retry, timeout_ms, inputs, section, position, needs, approval_required,
                      approval_timeout_ms, skip_reason, skipped_by_filter)
            """,
            [
                PostgresArray.literal(steps.map(\.key.runID)),
                PostgresArray.literal(steps.map(\.key.stepID)),
                submission.namespace,
                PostgresArray.literal(steps.map(\.kind)),
                PostgresArray.literal(steps.map(\.state.policy.json.jsonText)),
                PostgresArray.literal(steps.map { Optional($0.timeout.milliseconds) }),
                PostgresArray.literal(steps.map(\.inputs)),
                PostgresArray.literal(steps.map(\.section.rawValue)),
                PostgresArray.literal(steps.map { Optional($0.position) }),
                PostgresArray.literal(steps.map { PostgresArray.literal($0.needs) }),
                PostgresArray.literal(steps.map { $0.approval.map { $0.required } }),
                PostgresArray.literal(steps.map { $0.approval.map { $0.timeout.milliseconds } }),
                PostgresArray.literal(steps.map(\.skipReason)),
                PostgresArray.literal(steps.map { $0.skippedByFilter ? "t" : "f" }),
                submission.pool,
            ]
        )
    }

    // MARK: Controlling

    /// Records an approval decision and applies it. Refuses self-approval when the
    /// gate says `distinct_from_submitter`, a second approval by the same person,
    /// and a step that is not waiting for approval.
    public func decide(
        run runID: String, step stepID: String, approve: Bool, by approver: String, comment: String?, namespace: String,
        nowMs: Int64, on db: PostgresConnection
    ) async throws(PostgresError) -> (result: Result<RunRecord, RunRefusal>, effects: Effects) {
        try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) in
            var work = RunTransitions(nowMs: nowMs)
            try work.load([runID], on: db)
            guard let run = work.record(runID), run.namespace == namespace else {
                return (.failure(RunRefusal(.notFound, "no run \(runID)")), Effects())
            }
            guard let step = work.steps(runID)?[stepID] else {
                return (.failure(RunRefusal(.notFound, "run \(runID) has no step \(stepID)")), Effects())
            }
            guard step.state.status == .awaitingApproval else {
                return (.failure(RunRefusal(.conflict, "step \(stepID) is \(step.state.status.rawValue), not waiting for approval")), Effects())
            }
            let rule = ApprovalRule(inputs: JSONValue.parseObject(step.inputs) ?? [:])
            if let refusal = rule.refusal(approver: approver, submitter: run.submitter, step: stepID) {
                return (.failure(RunRefusal(.forbidden, refusal)), Effects())
            }
            if approve && step.approvers.contains(approver) {
                return (.failure(RunRefusal(.conflict, "\(approver) already approved step \(stepID)")), Effects())
            }
            try db.query(
                "INSERT INTO approvals (run_id, step_id, decision, approver, comment) VALUES ($1, $2, $3, $4, $5)",
                [runID, stepID, approve ? "approved" : "rejected", approver, comment]
            )
            work.apply(approve ? .approvalGranted(step: stepID, by: approver) : .approvalRejected(step: stepID, by: approver), to: runID)
            try work.admitWaiting(on: db)
            try work.finish(on: db)
            return (.success(work.record(runID) ?? run), work.effects)
        }
    }

    /// Cancels a run: queued and running steps are stopped, `finally` still runs;
    /// a run waiting for its group ends at once.
    public func cancel(run runID: String, namespace: String, nowMs: Int64, on db: PostgresConnection) async throws(PostgresError) -> (result: Result<RunRecord, RunRefusal>, effects: Effects) {
        try await control(runID, namespace: namespace, nowMs: nowMs, on: db) { run in
            run.phase == .done ? RunRefusal(.conflict, "run \(runID) already \(run.status)") : nil
        } event: { .canceled }
    }

    /// Re-runs the failed steps of a failed run (or only `step`) and what they held up, as new attempts.
    public func retry(run runID: String, step: String?, namespace: String, nowMs: Int64, on db: PostgresConnection) async throws(PostgresError) -> (result: Result<RunRecord, RunRefusal>, effects: Effects) {
        try await control(runID, namespace: namespace, nowMs: nowMs, on: db) { run in
            guard run.status == "failed" else { return RunRefusal(.conflict, "run \(runID) is \(run.status); only a failed run can be retried") }
            return nil
        } event: { .retryFailed(step: step) }
    }

    private func control(
        _ runID: String, namespace: String, nowMs: Int64, on db: PostgresConnection,
        check: @escaping @Sendable (RunRecord) -> RunRefusal?, event: @escaping @Sendable () -> RunEvent
    ) async throws(PostgresError) -> (result: Result<RunRecord, RunRefusal>, effects: Effects) {
        try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) in
            var work = RunTransitions(nowMs: nowMs)
            try work.load([runID], on: db)
            guard let run = work.record(runID), run.namespace == namespace else {
                return (.failure(RunRefusal(.notFound, "no run \(runID)")), Effects())
            }
            if let refusal = check(run) { return (.failure(refusal), Effects()) }
            if case .retryFailed(let step) = event() {
                if let step, work.steps(runID)?[step]?.state.status != .failed {
                    return (.failure(RunRefusal(.conflict, "step \(step) of run \(runID) did not fail; name a failed step")), Effects())
                }
                // A retried run goes back into its group: it may not overtake a run holding it.
                if let group = run.concurrencyGroup {
                    try RunTransitions.lockGroup(.init(namespace: namespace, group: group), on: db)
                    let busy = try db.query(
                        "SELECT id, environment FROM runs WHERE namespace = $1 AND concurrency_group = $2 AND finished_at IS NULL AND id <> $3 LIMIT 1",
                        [namespace, group, runID]
                    )
                    if !busy.isEmpty, let other = busy[0].string("id") {
                        let holder = busy[0].string("environment") == run.environment ? "run \(other)" : "a run of another environment"
                        let shown = EnvironmentRules.displayGroup(group, environment: run.environment)
                        return (.failure(RunRefusal(.conflict, "group \(shown) is busy with \(holder); retry when it finishes")), Effects())
                    }
                }
            }
            work.apply(event(), to: runID)
            try work.admitWaiting(on: db)
            try work.finish(on: db)
            return (.success(work.record(runID) ?? run), work.effects)
        }
    }

    // MARK: Deadlines

    /// Runs past their deadline and approval gates past theirs, as events to apply.
    public func dueDeadlines(namespace: String, nowMs: Int64, limit: Int = 200, on db: PostgresConnection) async throws(PostgresError) -> [(runID: String, event: RunEvent)] {
        var events: [(runID: String, event: RunEvent)] = []
        let runs = try await db.run(
            "SELECT id FROM runs WHERE finished_at IS NULL AND deadline_at_ms <= $1 AND namespace = $2 ORDER BY deadline_at_ms LIMIT $3",
            [String(nowMs), namespace, String(limit)]
        )
        for index in 0..<runs.count { if let id = runs[index].string("id") { events.append((id, .deadlinePassed)) } }
        let gates = try await db.run(
            """
            SELECT run_id, step_id FROM steps
            WHERE status = 'awaiting_approval' AND approval_deadline_ms <= $1 AND namespace = $2
            ORDER BY approval_deadline_ms LIMIT $3
            """,
            [String(nowMs), namespace, String(limit)]
        )
        for index in 0..<gates.count {
            if let run = gates[index].string("run_id"), let step = gates[index].string("step_id") {
                events.append((run, .approvalTimedOut(step: step)))
            }
        }
        return events
    }
}
