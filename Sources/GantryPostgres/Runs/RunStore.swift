import GantryCore

/// The dispatcher's view of runs and steps in Postgres.
///
/// Every change to a step happens in a transaction that first locks the step's
/// row, then applies the pure `StepMachine`: two dispatchers applying the same
/// event serialize on the lock and the second finds nothing to do.
public struct RunStore: Sendable {
    /// A step transition with what the dispatcher must now do in Redis.
    public struct Applied: Sendable {
        public var step: StepRecord
        public var commands: [StepCommand]
    }

    public init() {}

    // MARK: Creating

    /// Inserts runs and their steps in one transaction.
    public func create(_ runs: [NewRun], on db: PostgresConnection) async throws(PostgresError) {
        guard !runs.isEmpty else { return }
        let steps = runs.flatMap(\.steps)
        let namespaces = runs.flatMap { run in run.steps.map { _ in run.namespace } }
        try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) in
            try db.query(
                """
                INSERT INTO runs (id, namespace, pipeline, submitter, status)
                SELECT id, namespace, pipeline, submitter, 'running'
                FROM unnest($1::uuid[], $4::text[], $2::text[], $3::text[]) AS v(id, namespace, pipeline, submitter)
                """,
                [
                    PostgresArray.literal(runs.map(\.id)),
                    PostgresArray.literal(runs.map(\.pipeline)),
                    PostgresArray.literal(runs.map(\.submitter)),
                    PostgresArray.literal(runs.map(\.namespace)),
                ]
            )
            try db.query(
                """
                INSERT INTO steps (run_id, step_id, namespace, kind, status, attempt, charged, retry, timeout_ms, inputs)
                SELECT run_id, step_id, namespace, kind, status, attempt, 0, retry, timeout_ms, inputs
                FROM unnest($1::uuid[], $2::text[], $9::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::bigint[], $8::text[])
                     AS v(run_id, step_id, namespace, kind, status, attempt, retry, timeout_ms, inputs)
                """,
                [
                    PostgresArray.literal(steps.map(\.key.runID)),
                    PostgresArray.literal(steps.map(\.key.stepID)),
                    PostgresArray.literal(steps.map(\.kind)),
                    PostgresArray.literal(steps.map(\.state.status.rawValue)),
                    PostgresArray.literal(steps.map { Optional($0.state.attempt) }),
                    PostgresArray.literal(steps.map(\.state.policy.json.jsonText)),
                    PostgresArray.literal(steps.map { Optional($0.timeout.milliseconds) }),
                    PostgresArray.literal(steps.map(\.inputs)),
                    PostgresArray.literal(namespaces),
                ]
            )
        }
    }

    // MARK: Applying outcomes

    /// Applies attempt outcomes to their steps in one transaction and returns the
    /// transitions that changed something, with their commands. Outcomes for
    /// unknown steps are ignored (a run deleted by hand, or another installation).
    public func apply(
        _ results: [AttemptResult], nowMs: Int64, on db: PostgresConnection
    ) async throws(PostgresError) -> [Applied] {
        guard !results.isEmpty else { return [] }
        return try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) -> [Applied] in
            var steps = try RunStore.lock(Array(Set(results.map(\.key.step))), on: db)
            var random = SystemRandomNumberGenerator()
            var changed: [StepKey: [StepCommand]] = [:]
            // Apply in the order given; several outcomes of one step in a batch are fine.
            for result in results {
                guard var step = steps[result.key.step] else { continue }
                let transition = StepMachine.apply(
                    step.state,
                    .attemptFinished(
                        attempt: result.key.attempt, status: result.status, exitCode: result.exitCode,
                        retryable: result.retryable, error: result.error
                    ),
                    nowMs: nowMs, random: &random
                )
                guard transition.changed else { continue }
                step.state = transition.state
                steps[result.key.step] = step
                changed[step.key, default: []] += transition.commands
            }
            guard !changed.isEmpty else { return [] }
            let updated = changed.keys.sorted().compactMap { steps[$0] }
            try RunStore.write(updated, on: db)
            // Only a step that just ended can end its run.
            let ended = Set(updated.filter { $0.state.status.isTerminal }.map(\.key.runID))
            if !ended.isEmpty { try RunStore.finishRuns(Array(ended), on: db) }
            return updated.map { Applied(step: $0, commands: changed[$0.key] ?? []) }
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
                ORDER BY t.run_id, t.step_id
                FOR UPDATE OF t SKIP LOCKED
            ) l
            WHERE s.run_id = l.run_id AND s.step_id = l.step_id
            """,
            [PostgresArray.literal(keys.map(\.runID)), PostgresArray.literal(keys.map(\.stepID))]
        )
    }

    // MARK: Reading

    /// The steps of these runs.
    public func steps(ofRuns runIDs: [String], on db: PostgresConnection) async throws(PostgresError) -> [StepRecord] {
        guard !runIDs.isEmpty else { return [] }
        let rows = try await db.run(
            "SELECT \(StepRecord.selectList) FROM steps s WHERE s.run_id = ANY($1::uuid[]) ORDER BY s.run_id, s.step_id",
            [PostgresArray.literal(runIDs)]
        )
        return StepRecord.all(rows)
    }

    /// These runs' rows (status and times).
    public func runs(_ runIDs: [String], on db: PostgresConnection) async throws(PostgresError) -> [RunSummary] {
        guard !runIDs.isEmpty else { return [] }
        let rows = try await db.run(
            """
            SELECT id, pipeline, status, (extract(epoch FROM created_at) * 1000)::bigint AS created_ms,
                   (extract(epoch FROM finished_at) * 1000)::bigint AS finished_ms
            FROM runs WHERE id = ANY($1::uuid[])
            """,
            [PostgresArray.literal(runIDs)]
        )
        return (0..<rows.count).compactMap { index in
            let row = rows[index]
            guard let id = row.string("id"), let pipeline = row.string("pipeline"), let status = row.string("status"),
                  let created = row.int64("created_ms") else { return nil }
            return RunSummary(id: id, pipeline: pipeline, status: status, createdAtMs: created, finishedAtMs: row.int64("finished_ms"))
        }
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

    // MARK: Statements inside a transaction

    private static func lock(_ keys: [StepKey], on db: isolated PostgresConnection) throws(PostgresError) -> [StepKey: StepRecord] {
        // ORDER BY fixes the lock order, so two dispatchers locking overlapping sets cannot deadlock.
        let rows = try db.query(
            """
            SELECT \(StepRecord.selectList) FROM steps s
            JOIN unnest($1::uuid[], $2::text[]) AS k(run_id, step_id) ON s.run_id = k.run_id AND s.step_id = k.step_id
            ORDER BY s.run_id, s.step_id
            FOR UPDATE OF s
            """,
            [PostgresArray.literal(keys.map(\.runID)), PostgresArray.literal(keys.map(\.stepID))]
        )
        var out: [StepKey: StepRecord] = [:]
        for record in StepRecord.all(rows) { out[record.key] = record }
        return out
    }

    private static func write(_ steps: [StepRecord], on db: isolated PostgresConnection) throws(PostgresError) {
        try db.query(
            """
            UPDATE steps s SET status = v.status, attempt = v.attempt, charged = v.charged, due_at_ms = v.due_at_ms,
                   last_error = v.last_error, updated_at = now(),
                   finished_at = CASE WHEN v.status IN ('succeeded', 'failed', 'canceled') THEN now() END
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[], $6::bigint[], $7::text[])
                 AS v(run_id, step_id, status, attempt, charged, due_at_ms, last_error)
            WHERE s.run_id = v.run_id AND s.step_id = v.step_id
            """,
            [
                PostgresArray.literal(steps.map(\.key.runID)),
                PostgresArray.literal(steps.map(\.key.stepID)),
                PostgresArray.literal(steps.map(\.state.status.rawValue)),
                PostgresArray.literal(steps.map { Optional($0.state.attempt) }),
                PostgresArray.literal(steps.map { Optional($0.state.charged) }),
                PostgresArray.literal(steps.map(\.state.dueAtMs)),
                PostgresArray.literal(steps.map(\.state.lastError)),
            ]
        )
    }

    /// Finishes each run whose steps are all terminal: failed if one failed,
    /// canceled if one was canceled, succeeded otherwise.
    ///
    /// "Not finished" is tested as `finished_at IS NULL`, not `status = 'running'`:
    /// the latter matches the partial index `runs_status`, and the planner, when its
    /// statistics say few runs are running, scans that whole index once per run
    /// (seen here as throughput falling from 9,000 to 450 steps/s).
    private static func finishRuns(_ runIDs: [String], on db: isolated PostgresConnection) throws(PostgresError) {
        try db.query(
            """
            UPDATE runs r SET status = t.outcome, finished_at = now()
            FROM (
                SELECT run_id,
                       CASE WHEN bool_or(status = 'failed') THEN 'failed'
                            WHEN bool_or(status = 'canceled') THEN 'canceled'
                            ELSE 'succeeded' END AS outcome
                FROM steps WHERE run_id = ANY($1::uuid[])
                GROUP BY run_id
                HAVING bool_and(status IN ('succeeded', 'failed', 'canceled'))
            ) t
            WHERE r.id = t.run_id AND r.finished_at IS NULL
            """,
            [PostgresArray.literal(runIDs)]
        )
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
