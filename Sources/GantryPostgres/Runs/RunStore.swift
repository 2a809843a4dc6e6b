import GantryCore

/// The dispatcher's view of runs and steps in Postgres.
///
/// Every change to a run happens in a transaction that first locks the run's
/// row, then applies the pure `RunMachine`: two dispatchers applying the same
/// event serialize on the lock and the second finds nothing to do.
public struct RunStore: Sendable {
    public init() {}

    // MARK: Creating

    /// Inserts runs and their steps in one transaction, with `COPY` (4 µs less of the
    /// server's time per one-step run than `INSERT … SELECT FROM unnest` of array
    /// parameters: 20,000 runs in psql).
    public func create(_ runs: [NewRun], on db: PostgresConnection) async throws(PostgresError) {
        guard !runs.isEmpty else { return }
        var runRows = PostgresCopyRows(capacity: runs.count * 96)
        var stepRows = PostgresCopyRows(capacity: runs.count * 320)
        // The steps of a batch nearly always share one policy: its JSON is written once, not per
        // step (that was a fifth of the CPU of an enqueue).
        var policyText: (policy: RetryPolicy, text: String)?
        for run in runs {
            runRows.append([run.id, run.namespace, run.pipeline, run.submitter, "running"])
            for step in run.steps {
                let policy: String
                if let cached = policyText, cached.policy == step.state.policy {
                    policy = cached.text
                } else {
                    policy = step.state.policy.json.jsonText
                    policyText = (step.state.policy, policy)
                }
                stepRows.append([
                    step.key.runID, step.key.stepID, run.namespace, step.kind, step.state.status.rawValue,
                    String(step.state.attempt), "0", policy, String(step.timeout.milliseconds), step.inputs,
                ])
            }
        }
        let (runsCopy, stepsCopy) = (runRows, stepRows)
        try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) in
            try db.copy(into: "runs", columns: ["id", "namespace", "pipeline", "submitter", "status"], runsCopy)
            try db.copy(
                into: "steps",
                columns: ["run_id", "step_id", "namespace", "kind", "status", "attempt", "charged", "retry", "timeout_ms", "inputs"],
                stepsCopy
            )
        }
    }

    // MARK: Applying events

    /// Applies attempt outcomes to their runs in one transaction and returns what
    /// must now happen in Redis. Outcomes for unknown runs are ignored (a run
    /// deleted by hand, or another installation's).
    public func apply(_ results: [AttemptResult], nowMs: Int64, on db: PostgresConnection) async throws(PostgresError) -> Effects {
        guard !results.isEmpty else { return Effects() }
        let events = results.map { result in
            (result.key.step.runID, RunEvent.attemptFinished(
                step: result.key.step.stepID, attempt: result.key.attempt, status: result.status,
                exitCode: result.exitCode, retryable: result.retryable, error: result.error
            ))
        }
        return try await transition(events, nowMs: nowMs, on: db)
    }

    /// Applies events to runs under their row locks, in one transaction.
    public func transition(_ events: [(runID: String, event: RunEvent)], nowMs: Int64, on db: PostgresConnection) async throws(PostgresError) -> Effects {
        guard !events.isEmpty else { return Effects() }
        return try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) -> Effects in
            var work = RunTransitions(nowMs: nowMs)
            try work.load(events.map(\.runID), on: db)
            for (runID, event) in events { work.apply(event, to: runID) }
            try work.admitWaiting(on: db)
            try work.finish(on: db)
            return work.effects
        }
    }

    /// Marks steps whose delayed retry was just moved to a stream as queued again.
    public func markQueued(_ jobs: [Job], on db: PostgresConnection) async throws(PostgresError) {
        guard !jobs.isEmpty else { return }
        try await db.run(
            """
            UPDATE steps s SET status = 'queued', due_at_ms = NULL, updated_at = now()
            FROM unnest($1::uuid[], $2::text[], $3::int[]) AS v(run_id, step_id, attempt)
            WHERE s.run_id = v.run_id AND s.step_id = v.step_id AND s.attempt = v.attempt AND s.status = 'retrying'
              AND s.run_id = ANY($1::uuid[])
            """,
            [
                PostgresArray.literal(jobs.map(\.runID)),
                PostgresArray.literal(jobs.map(\.stepID)),
                PostgresArray.literal(jobs.map { Optional($0.attempt) }),
            ]
        )
    }

    // MARK: Reconciling

    /// Steps of the installation `namespace` that are not terminal and have not
    /// changed for `quietFor`: the ones the reconciler checks against Redis.
    public func quietSteps(namespace: String, quietFor: Duration, limit: Int, on db: PostgresConnection) async throws(PostgresError) -> [StepRecord] {
        let rows = try await db.run(
            """
            SELECT \(StepRecord.selectList) FROM steps s
            WHERE s.namespace = $3 AND s.status IN ('queued', 'retrying')
              AND s.updated_at < now() - ($1::bigint * interval '1 millisecond')
            ORDER BY s.updated_at LIMIT $2
            """,
            [String(quietFor.milliseconds), String(limit), namespace]
        )
        return StepRecord.all(rows)
    }

    /// Records that the reconciler saw these steps alive in Redis, so they leave the quiet list for a while.
    /// Rows locked by a transition in progress are skipped (they are changing anyway), and the rest
    /// are locked in key order, so this never deadlocks with `apply`.
    public func touch(_ keys: [StepKey], on db: PostgresConnection) async throws(PostgresError) {
        guard !keys.isEmpty else { return }
        try await db.run(
            """
            UPDATE steps s SET updated_at = now()
            FROM (
                SELECT t.run_id, t.step_id FROM steps t
                JOIN unnest($1::uuid[], $2::text[]) AS v(run_id, step_id) ON t.run_id = v.run_id AND t.step_id = v.step_id
                WHERE t.run_id = ANY($1::uuid[])
                ORDER BY t.run_id, t.step_id
                FOR UPDATE OF t SKIP LOCKED
            ) l
            WHERE s.run_id = l.run_id AND s.step_id = l.step_id AND s.run_id = ANY($1::uuid[])
            """,
            [PostgresArray.literal(keys.map(\.runID)), PostgresArray.literal(keys.map(\.stepID))]
        )
    }

    // MARK: Reading

    /// These runs' rows.
    public func runs(_ runIDs: [String], on db: PostgresConnection) async throws(PostgresError) -> [RunRecord] {
        guard !runIDs.isEmpty else { return [] }
        let rows = try await db.run(
            "SELECT \(RunRecord.selectList) FROM runs r WHERE r.id = ANY($1::uuid[])",
            [PostgresArray.literal(runIDs)]
        )
        return (0..<rows.count).compactMap { RunRecord(rows[$0]) }
    }

    /// How many of these runs are not finished yet.
    public func unfinishedCount(_ runIDs: [String], on db: PostgresConnection) async throws(PostgresError) -> Int {
        guard !runIDs.isEmpty else { return 0 }
        let rows = try await db.run(
            "SELECT count(*) AS n FROM runs WHERE id = ANY($1::uuid[]) AND finished_at IS NULL",
            [PostgresArray.literal(runIDs)]
        )
        return rows.isEmpty ? 0 : rows[0].int("n") ?? 0
    }
}

extension PostgresConnection {
    /// `transaction` for callers outside the actor.
    public func transactionAsync<T: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) throws(PostgresError) -> T
    ) async throws(PostgresError) -> T {
        try transaction(body)
    }
}

// MARK: Listing and showing runs

/// A run with everything the API shows about it.
public struct RunDetail: Sendable {
    public var run: RunRecord
    /// In order: main, on_failure, finally; each as written.
    public var steps: [StepRecord]
    public var attempts: [AttemptResult]
    public var approvals: [ApprovalRecord]
    /// For a waiting run: the run just ahead of it in its group.
    public var behind: String?

    public init(run: RunRecord, steps: [StepRecord], attempts: [AttemptResult], approvals: [ApprovalRecord], behind: String?) {
        self.run = run
        self.steps = steps
        self.attempts = attempts
        self.approvals = approvals
        self.behind = behind
    }
}

/// One approval decision.
public struct ApprovalRecord: Sendable, Equatable {
    public var stepID: String
    public var approved: Bool
    public var approver: String
    public var comment: String?
    public var decidedAtMs: Int64
}

extension RunStore {
    /// Runs of the installation, newest first, filtered.
    /// - Parameter environments: the environments the caller may read; nil for all.
    public func list(
        namespace: String, environments: Set<String>?, environment: String?, status: String?, limit: Int,
        on db: PostgresConnection
    ) async throws(PostgresError) -> [RunRecord] {
        let rows = try await db.run(
            """
            SELECT \(RunRecord.selectList) FROM runs r
            WHERE r.namespace = $1 AND ($2::text IS NULL OR r.environment = $2) AND ($3::text IS NULL OR r.status = $3)
              AND ($4::text[] IS NULL OR r.environment = ANY($4::text[]))
            ORDER BY r.id DESC LIMIT $5
            """,
            [namespace, environment, status, environments.map { PostgresArray.literal($0.sorted()) }, String(limit)]
        )
        return (0..<rows.count).compactMap { RunRecord(rows[$0]) }
    }

    /// A gate that waits for approval, with what decides who may approve it.
    public struct OpenGate: Sendable {
        public var run: RunRecord
        public var stepID: String
        /// The step's inputs (its `approvers` and `distinct_from_submitter`, raised to the policy's at submit).
        public var inputs: [String: JSONValue]
        public var approvers: [String]
        public var required: Int
        public var deadlineMs: Int64?
    }

    /// Gates waiting for approval in runs of `environments` (nil: every environment), newest run first.
    public func openGates(namespace: String, environments: Set<String>?, limit: Int, on db: PostgresConnection) async throws(PostgresError) -> [OpenGate] {
        let rows = try await db.run(
            """
            SELECT \(RunRecord.selectList), s.step_id, s.inputs, s.approvers, s.approval_required, s.approval_deadline_ms
            FROM steps s JOIN runs r ON r.id = s.run_id
            WHERE s.status = 'awaiting_approval' AND s.namespace = $1 AND r.namespace = $1
              AND ($2::text[] IS NULL OR r.environment = ANY($2::text[]))
            ORDER BY r.id DESC, s.position LIMIT $3
            """,
            [namespace, environments.map { PostgresArray.literal($0.sorted()) }, String(limit)]
        )
        return (0..<rows.count).compactMap { index -> OpenGate? in
            let row = rows[index]
            guard let run = RunRecord(row), let step = row.string("step_id") else { return nil }
            let approvers = row.string("approvers") ?? "{}"
            return OpenGate(
                run: run, stepID: step, inputs: JSONValue.parseObject(row.string("inputs") ?? "{}") ?? [:],
                approvers: approvers == "{}" ? [] : PostgresArray.parse(approvers),
                required: row.int("approval_required") ?? 1, deadlineMs: row.int64("approval_deadline_ms")
            )
        }
    }

    /// One run with its steps, attempts and approvals; nil when the installation has no such run.
    public func detail(run runID: String, namespace: String, on db: PostgresConnection) async throws(PostgresError) -> RunDetail? {
        try await detail(run: runID, namespace: namespace, tokenHash: nil, on: db).detail
    }

    /// The run's detail and, in the same round trip, the grant of the token with this
    /// hash (nil when unknown or revoked): what a read request needs, in one wait for
    /// the server instead of two. The caller must not show the detail before checking the grant.
    public func detail(
        run runID: String, namespace: String, tokenHash: String?, on db: PostgresConnection
    ) async throws(PostgresError) -> (grant: Grant?, detail: RunDetail?) {
        let token = tokenHash.map { TokenStore.grantQuery(hash: $0, namespace: namespace) }
        guard Identifiers.isValidRunID(runID) else {
            guard let token else { return (nil, nil) }
            return (TokenStore.grant(from: try await db.run(token.sql, token.parameters)), nil)
        }
        // One round trip, one snapshot: the run, its steps, attempts and approvals as of one
        // moment (the token inside the transaction: its isolation level must come first).
        var statements: [(sql: String, parameters: [String?])] = [("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", [])]
        if let token { statements.append(token) }
        let base = statements.count - 1  // the run's rows are at base + 1
        statements += [
            (RunStore.runSQL, [runID, namespace]),
            (RunStore.stepsSQL, [runID]),
            (AttemptLedger.ofRunSQL, [runID]),
            (RunStore.approvalsSQL, [runID]),
            ("COMMIT", []),
        ]
        let results = try await db.runPipeline(statements)
        let grant = token == nil ? nil : TokenStore.grant(from: results[1])
        let runRows = results[base + 1]
        guard !runRows.isEmpty, let run = RunRecord(runRows[0]) else { return (grant, nil) }
        let order: [RunState.Section: Int] = [.main: 0, .onFailure: 1, .finally: 2]
        let steps = StepRecord.all(results[base + 2]).sorted {
            (order[$0.section]!, $0.position, $0.key.stepID) < (order[$1.section]!, $1.position, $1.key.stepID)
        }
        let attempts = (0..<results[base + 3].count).compactMap { AttemptLedger.result(results[base + 3][$0]) }
        let approvalRows = results[base + 4]
        let approvals = (0..<approvalRows.count).compactMap { index -> ApprovalRecord? in
            let row = approvalRows[index]
            guard let step = row.string("step_id"), let approver = row.string("approver"), let at = row.int64("decided_ms") else { return nil }
            return ApprovalRecord(stepID: step, approved: row.string("decision") == "approved", approver: approver, comment: row.string("comment"), decidedAtMs: at)
        }
        let detail = RunDetail(run: run, steps: steps, attempts: attempts, approvals: approvals, behind: try await behind(run, on: db))
        return (grant, detail)
    }

    // The statements of a run view, prepared once per connection: planning them was
    // half of the database time of a GET.
    private static let runSQL = PreparedStatements.register(
        "gantry_run", "SELECT \(RunRecord.selectList) FROM runs r WHERE r.id = $1 AND r.namespace = $2"
    )
    private static let stepsSQL = PreparedStatements.register(
        "gantry_run_steps", "SELECT \(StepRecord.selectList) FROM steps s WHERE s.run_id = $1"
    )
    private static let approvalsSQL = PreparedStatements.register(
        "gantry_run_approvals",
        """
        SELECT step_id, decision, approver, comment, (extract(epoch FROM decided_at) * 1000)::bigint AS decided_ms
        FROM approvals WHERE run_id = $1 ORDER BY seq
        """
    )

    /// For a waiting run, the run just ahead of it in its concurrency group.
    public func behind(_ run: RunRecord, on db: PostgresConnection) async throws(PostgresError) -> String? {
        guard run.status == "waiting", let group = run.concurrencyGroup else { return nil }
        let ahead = try await db.run(
            """
            SELECT id FROM runs WHERE namespace = $1 AND concurrency_group = $2 AND finished_at IS NULL AND id < $3
            ORDER BY id DESC LIMIT 1
            """,
            [run.namespace, group, run.id]
        )
        return ahead.isEmpty ? nil : ahead[0].string("id")
    }
}
