import GantryCore

/// Applies run events inside one transaction: locks the runs' rows, rebuilds each
/// run's `RunState` from its rows, lets the pure `RunMachine` decide, writes back
/// what changed and collects what must happen in Redis.
///
/// Lock order, everywhere: the runs being changed (by id), then a concurrency
/// group's advisory lock, then the waiting runs of that group. Submissions take
/// the group lock before any run lock and only ever lock waiting runs, so no two
/// transactions can wait on each other in a cycle.
struct RunTransitions {
    private struct Loaded {
        var record: RunRecord
        var steps: [String: StepRecord]
        var state: RunState
        /// Whether the run's row must be written, and which steps' rows.
        var runChanged = false
        var changedSteps: Set<String> = []
        /// Steps that went from pending to running in this transaction: their expressions are bound now.
        var started: Set<String> = []
        var enqueue: [(step: String, attempt: Int)] = []
        var schedule: [(step: String, attempt: Int, dueAtMs: Int64)] = []

        /// What the run's expressions read, with how the run is going now.
        var context: Expressions.RunContext {
            var context = record.context
            let sections = RunState.Section.allCases
            context.failedSteps = steps.values
                .filter { $0.state.status == .failed }
                .sorted { ($0.section == $1.section) ? $0.position < $1.position
                    : sections.firstIndex(of: $0.section)! < sections.firstIndex(of: $1.section)! }
                .map(\.key.stepID)
            // A deploy step that rolled back and succeeded: what notify calls a rollback.
            let rolledBack = steps.values.contains { step in
                step.kind == "deploy" && step.state.status == .succeeded
                    && JSONValue.parseObject(step.inputs)?["action"]?.stringValue == "rollback"
            }
            context.outcome = state.outcome == .canceled ? "canceled"
                : rolledBack ? "rollback"
                : state.outcome == .failed || !context.failedSteps.isEmpty ? "failure" : "success"
            context.startedAtMs = record.startedAtMs
            return context
        }
    }

    private let nowMs: Int64
    private var runs: [String: Loaded] = [:]
    /// Whether this transaction already asked for keyed plans (see `load`).
    private var plansKeyed = false
    private var random = SystemRandomNumberGenerator()
    private(set) var effects = Effects()
    /// Concurrency groups a finishing run freed: their next waiting run may start.
    private var freedGroups: Set<GroupKey> = []

    struct GroupKey: Hashable {
        var namespace: String
        var group: String
    }

    init(nowMs: Int64) {
        self.nowMs = nowMs
    }

    // MARK: Loading

    /// Locks and loads these runs (those already loaded are kept).
    mutating func load(_ ids: [String], on db: isolated PostgresConnection) throws(PostgresError) {
        let missing = Array(Set(ids).subtracting(runs.keys)).sorted()
        guard !missing.isEmpty else { return }
        // First lock the runs, then read their steps in a second statement. ORDER BY fixes the
        // lock order, so two dispatchers locking overlapping sets cannot deadlock. The steps
        // must be read after the lock is held: one statement joining them would read the
        // steps as they were before a transaction we waited for committed (READ COMMITTED
        // re-checks only the locked rows), and a transition would be applied twice.
        // Both in one round trip (pipeline mode); the server still runs them one after the other.
        let ids = PostgresArray.literal(missing)
        var statements: [(sql: String, parameters: [String?])] = [
            (Self.lockRunsSQL, [ids]),
            (Self.selectStepsSQL, [ids]),
        ]
        if !plansKeyed {
            // Every statement of a transition reads or writes rows by key. On tables without
            // statistics yet (a new installation, until autovacuum's first analyze) the planner
            // prices `= ANY` over hundreds of keys as the whole table and scanned all of it,
            // 20 ms per statement at 100,000 steps; keyed plans do not depend on statistics.
            // For the rest of the transaction, sent in the same round trip.
            statements.insert(("SET LOCAL enable_seqscan = off", []), at: 0)
            plansKeyed = true
        }
        let results = try db.pipeline(statements)
        let runRows = results[results.count - 2], rows = results[results.count - 1]
        // Sized up front: growing these one entry at a time was a tenth of the dispatcher's CPU.
        var stepsByRun: [String: [String: StepRecord]] = [:]
        stepsByRun.reserveCapacity(missing.count)
        for step in StepRecord.all(rows) {
            stepsByRun[step.key.runID, default: [:]][step.key.stepID] = step
        }
        runs.reserveCapacity(runs.count + runRows.count)
        let columns = RunRecord.LockedColumns(runRows)
        for index in 0..<runRows.count {
            guard let record = RunRecord(locked: runRows[index], columns) else { continue }
            let steps = stepsByRun[record.id] ?? [:]
            runs[record.id] = Loaded(record: record, steps: steps, state: RunTransitions.state(record, steps))
        }
    }

    private static func state(_ record: RunRecord, _ steps: [String: StepRecord]) -> RunState {
        var order: [RunState.Section: [String]] = [:]
        if steps.count == 1, let only = steps.first?.value {
            order[only.section] = [only.key.stepID]
        } else {
            var bySection: [RunState.Section: [StepRecord]] = [:]
            for step in steps.values { bySection[step.section, default: []].append(step) }
            for (section, list) in bySection {
                order[section] = list.sorted { ($0.position, $0.key.stepID) < ($1.position, $1.key.stepID) }.map(\.key.stepID)
            }
        }
        return RunState(
            steps: steps.mapValues(\.machineStep), order: order,
            timeout: .milliseconds(record.timeoutMs ?? 86_400_000),
            phase: record.phase, outcome: record.outcome, stopReason: record.stopReason
        )
    }

    func record(_ id: String) -> RunRecord? { runs[id]?.record }
    func steps(_ id: String) -> [String: StepRecord]? { runs[id]?.steps }

    // MARK: Applying

    /// Applies one event to a loaded run; an unknown run is ignored.
    mutating func apply(_ event: RunEvent, to id: String) {
        guard var run = runs.removeValue(forKey: id) else { return }
        defer { runs[id] = run }
        let (next, commands) = RunMachine.apply(run.state, event, nowMs: nowMs, random: &random)
        let before = run.state
        let recordBefore = run.record
        run.state = next
        for command in commands {
            switch command {
            case .enqueue(let step, let attempt):
                run.enqueue.append((step, attempt))
                if before.steps[step]?.lifecycle == .pending { run.started.insert(step) }
            case .scheduleRetry(let step, let attempt, let due):
                run.schedule.append((step, attempt, due))
            case .markSkipped, .awaitApproval:
                break
            case .cancelAttempts(let steps):
                effects.cancel += steps.compactMap { step in
                    next.steps[step].map { AttemptKey(step: StepKey(runID: id, stepID: step), attempt: $0.attempts.attempt) }
                }
            case .armDeadline(let at):
                run.record.deadlineAtMs = at
            case .finishRun(let status):
                effects.finishedRuns.append((id, status.rawValue))
                run.record.deadlineAtMs = nil
                if let group = run.record.concurrencyGroup {
                    freedGroups.insert(GroupKey(namespace: run.record.namespace, group: group))
                }
            }
        }
        if case .deadlinePassed = event { run.record.deadlineAtMs = nil }
        run.record.phase = next.phase
        run.record.outcome = next.outcome
        run.record.stopReason = next.stopReason
        switch next.phase {
        case .notStarted: run.record.status = "waiting"
        case .done: run.record.status = next.outcome.rawValue
        case .main, .onFailure, .finally: run.record.status = "running"
        }
        if run.record.differsInWrittenFields(from: recordBefore) { run.runChanged = true }
        for (stepID, step) in next.steps where step != before.steps[stepID] {
            let wasFailed = run.steps[stepID]?.state.status == .failed
            run.steps[stepID]?.update(from: step)
            run.changedSteps.insert(stepID)
            if !wasFailed, step.lifecycle == .failed, let record = run.steps[stepID] { effects.failedSteps.append(record) }
        }
    }

    /// Starts the next waiting run of every group a finished run freed, in submission order.
    mutating func admitWaiting(on db: isolated PostgresConnection) throws(PostgresError) {
        while let group = freedGroups.popFirst() {
            try RunTransitions.lockGroup(group, on: db)
            let rows = try db.query(
                """
                SELECT id, status FROM runs
                WHERE namespace = $1 AND concurrency_group = $2 AND finished_at IS NULL ORDER BY id
                """,
                [group.namespace, group.group]
            )
            var waiting: [String] = []
            var busy = false
            for index in 0..<rows.count {
                guard let id = rows[index].string("id") else { continue }
                // This transaction's own changes are not written yet: read them from memory.
                let status = runs[id]?.record.status ?? rows[index].string("status") ?? ""
                if status == "running" { busy = true }
                if status == "waiting" { waiting.append(id) }
            }
            guard !busy, let next = waiting.first else { continue }
            try load([next], on: db)
            guard let run = runs[next], run.record.status == "waiting" else { continue }
            apply(.submitted(skips: RunTransitions.plannedSkips(run.steps)), to: next)
        }
    }

    /// The skips planned at submission, kept on the pending steps while the run waited.
    static func plannedSkips(_ steps: [String: StepRecord]) -> [String: String] {
        var skips: [String: String] = [:]
        for (id, step) in steps where step.state.status == .pending && step.skippedByFilter {
            if let reason = step.skipReason { skips[id] = reason }
        }
        return skips
    }

    static func lockGroup(_ group: GroupKey, on db: isolated PostgresConnection) throws(PostgresError) {
        try db.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7301560421))", ["\(group.namespace)\u{1F}\(group.group)"])
    }

    // MARK: Writing

    /// Binds the expressions of the steps that started, writes every changed row,
    /// and turns the enqueue and schedule commands into jobs.
    mutating func finish(on db: isolated PostgresConnection) throws(PostgresError) {
        try bindStarted(on: db)
        var changedSteps: [StepRecord] = []
        var changedRuns: [RunRecord] = []
        let nowUs = nowMs * 1_000
        for id in runs.keys.sorted() {
            let run = runs[id]!
            if run.runChanged { changedRuns.append(run.record) }
            if run.runChanged || !run.changedSteps.isEmpty { effects.changedRuns.append(id) }
            for stepID in run.changedSteps.sorted() {
                if let step = run.steps[stepID] { changedSteps.append(step) }
            }
            for (stepID, attempt) in run.enqueue {
                if let step = run.steps[stepID] { effects.enqueue.append(step.job(attempt: attempt, nowUs: nowUs)) }
            }
            for (stepID, attempt, due) in run.schedule {
                if let step = run.steps[stepID] { effects.schedule.append((step.job(attempt: attempt, nowUs: nowUs), due)) }
            }
        }
        // Both writes in one round trip.
        let writes = [RunTransitions.update(changedSteps), RunTransitions.update(changedRuns)].compactMap { $0 }
        if !writes.isEmpty { _ = try db.pipeline(writes) }
    }

    /// Reads the outputs the started steps' expressions need and binds them.
    private mutating func bindStarted(on db: isolated PostgresConnection) throws(PostgresError) {
        var wanted: [(run: String, step: String, expressions: [String])] = []
        for (id, run) in runs {
            for stepID in run.started {
                guard let step = run.steps[stepID] else { continue }
                var expressions = Expressions.implicitReferences(kind: step.kind)
                if step.inputs.contains("${{"), let inputs = JSONValue.parse(step.inputs) {
                    for expression in Expressions.references(in: inputs) where !expressions.contains(expression) {
                        expressions.append(expression)
                    }
                }
                if !expressions.isEmpty { wanted.append((id, stepID, expressions)) }
            }
        }
        guard !wanted.isEmpty else { return }
        var reads: [StepKey] = []
        for item in wanted {
            reads += Expressions.stepsRead(by: item.expressions).map { StepKey(runID: item.run, stepID: $0) }
        }
        let outputs = try RunTransitions.outputs(of: reads, on: db)
        // One context per run (it reads all the run's steps), however many of its steps started.
        var contexts: [String: Expressions.RunContext] = [:]
        for item in wanted {
            let context = contexts[item.run] ?? runs[item.run]!.context
            contexts[item.run] = context
            let values = Expressions.bind(item.expressions, run: context, outputs: outputs[item.run] ?? [:])
            runs[item.run]!.steps[item.step]!.bindings = JSONValue.object(values.mapValues(JSONValue.string)).jsonText
            runs[item.run]!.changedSteps.insert(item.step)
        }
    }

    /// The outputs of the latest succeeded attempt of each step, by run and step.
    static func outputs(of steps: [StepKey], on db: isolated PostgresConnection) throws(PostgresError) -> [String: [String: [String: JSONValue]]] {
        guard !steps.isEmpty else { return [:] }
        let rows = try db.query(
            """
            SELECT DISTINCT ON (a.run_id, a.step_id) a.run_id, a.step_id, a.outputs
            FROM attempts a JOIN unnest($1::uuid[], $2::text[]) AS k(run_id, step_id)
                 ON a.run_id = k.run_id AND a.step_id = k.step_id
            WHERE a.status = 'succeeded' AND a.run_id = ANY($1::uuid[])
            ORDER BY a.run_id, a.step_id, a.attempt DESC
            """,
            [PostgresArray.literal(steps.map(\.runID)), PostgresArray.literal(steps.map(\.stepID))]
        )
        var out: [String: [String: [String: JSONValue]]] = [:]
        for index in 0..<rows.count {
            let row = rows[index]
            guard let run = row.string("run_id"), let step = row.string("step_id") else { continue }
            out[run, default: [:]][step] = JSONValue.parseObject(row.string("outputs") ?? "{}") ?? [:]
        }
        return out
    }

    // MARK: Statements

    // Prepared on each connection (PreparedStatements): parsing and planning these four took
    // 4.4 µs of Postgres time per step with a transaction per ~200 outcomes. Their plans look
    // rows up by key whatever the arrays hold, and they are planned inside a transition, after
    // `load` has turned sequential scans off, so the generic plan a connection settles on is the
    // keyed one too (checked with EXPLAIN EXECUTE under plan_cache_mode = force_generic_plan:
    // a nested loop over the arrays with an index scan of the primary key). The UPDATEs join on
    // the key alone: an extra `= ANY($1)` on the key, harmless with the array as a constant, is
    // evaluated again for every row of the loop when it is a parameter (sorting the whole array
    // each time), which made the prepared steps UPDATE twice as slow.
    static let lockRunsSQL = PreparedStatements.register(
        "gantry_transition_lock_runs",
        "SELECT r.id AS run_id, \(RunRecord.lockList) FROM runs r WHERE r.id = ANY($1::uuid[]) ORDER BY r.id FOR UPDATE OF r"
    )
    static let selectStepsSQL = PreparedStatements.register(
        "gantry_transition_steps",
        "SELECT \(StepRecord.selectList) FROM steps s WHERE s.run_id = ANY($1::uuid[])"
    )
    static let updateStepsSQL = PreparedStatements.register("gantry_transition_update_steps", """
        UPDATE steps s SET status = v.status, attempt = v.attempt, charged = v.charged, due_at_ms = v.due_at_ms,
               last_error = v.last_error, approval_deadline_ms = v.approval_deadline_ms,
               approvers = COALESCE(v.approvers::text[], '{}'), skip_reason = v.skip_reason,
               skipped_by_filter = v.skipped_by_filter, bindings = v.bindings, updated_at = now(),
               finished_at = CASE WHEN v.status IN ('succeeded', 'failed', 'canceled', 'skipped') THEN now() END
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[], $6::bigint[], $7::text[], $8::bigint[],
                    $9::text[], $10::text[], $11::boolean[], $12::text[])
             AS v(run_id, step_id, status, attempt, charged, due_at_ms, last_error, approval_deadline_ms,
                  approvers, skip_reason, skipped_by_filter, bindings)
        WHERE s.run_id = v.run_id AND s.step_id = v.step_id
        """)
    static let updateRunsSQL = PreparedStatements.register("gantry_transition_update_runs", """
        UPDATE runs r SET status = v.status, phase = v.phase, outcome = v.outcome, stop_reason = v.stop_reason,
               deadline_at_ms = v.deadline_at_ms,
               started_at = CASE WHEN v.status = 'running' THEN COALESCE(r.started_at, now()) ELSE r.started_at END,
               finished_at = CASE WHEN v.status IN ('succeeded', 'failed', 'canceled') THEN COALESCE(r.finished_at, now()) END
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
             AS v(id, status, phase, outcome, stop_reason, deadline_at_ms)
        WHERE r.id = v.id
        """)

    /// The UPDATE of these steps' rows, or nil when there are none.
    private static func update(_ steps: [StepRecord]) -> (sql: String, parameters: [String?])? {
        guard !steps.isEmpty else { return nil }
        return (
            updateStepsSQL,
            [
                PostgresArray.literal(steps.map(\.key.runID)),
                PostgresArray.literal(steps.map(\.key.stepID)),
                PostgresArray.literal(steps.map(\.state.status.rawValue)),
                PostgresArray.literal(steps.map { Optional($0.state.attempt) }),
                PostgresArray.literal(steps.map { Optional($0.state.charged) }),
                PostgresArray.literal(steps.map(\.state.dueAtMs)),
                PostgresArray.literal(steps.map(\.state.lastError)),
                PostgresArray.literal(steps.map(\.approvalDeadlineMs)),
                // Each element is itself an array literal, cast per row.
                PostgresArray.literal(steps.map { PostgresArray.literal($0.approvers) }),
                PostgresArray.literal(steps.map(\.skipReason)),
                PostgresArray.literal(steps.map { $0.skippedByFilter ? "t" : "f" }),
                PostgresArray.literal(steps.map(\.bindings)),
            ]
        )
    }

    /// The UPDATE of these runs' rows, or nil when there are none.
    private static func update(_ runs: [RunRecord]) -> (sql: String, parameters: [String?])? {
        guard !runs.isEmpty else { return nil }
        return (
            updateRunsSQL,
            [
                PostgresArray.literal(runs.map(\.id)),
                PostgresArray.literal(runs.map(\.status)),
                PostgresArray.literal(runs.map(\.phase.rawValue)),
                PostgresArray.literal(runs.map(\.outcome.rawValue)),
                PostgresArray.literal(runs.map(\.stopReason)),
                PostgresArray.literal(runs.map(\.deadlineAtMs)),
            ]
        )
    }
}
