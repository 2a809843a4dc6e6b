import GantryCore

/// Writes attempt outcomes to the append-only ledger and reads them back.
///
/// Recording is idempotent and fenced by the unique index on
/// (run, step, attempt): the first outcome written is the current one. A
/// writer that finds another writer's outcome there is recorded as `stale`.
public struct AttemptLedger: Sendable {
    /// What happened to one outcome handed to `record`.
    public enum Outcome: Sendable, Equatable {
        /// Written now as the attempt's current outcome.
        case recorded
        /// This writer's own outcome was already there (a retried commit).
        case alreadyRecorded
        /// Kept as `stale`: another outcome was current (e.g. the reaper's `lost`, named
        /// here), or the writer handed it in as stale because it knew its lease was gone.
        case stale(current: AttemptStatus?)
    }

    public init() {}

    /// Records a batch of outcomes in one round trip (plus one more for conflicts),
    /// committed before it returns (`synchronous_commit` as the server has it).
    public func record(_ results: [AttemptResult], on db: PostgresConnection) async throws(PostgresError) -> [AttemptKey: Outcome] {
        guard !results.isEmpty else { return [:] }
        return try await db.recordIsolated(results)
    }

    /// The current outcome of each attempt that has one.
    public func current(_ keys: [AttemptKey], on db: PostgresConnection) async throws(PostgresError) -> [AttemptKey: AttemptResult] {
        guard !keys.isEmpty else { return [:] }
        let rows = try await db.run(
            """
            SELECT \(AttemptLedger.selectList) FROM attempts a
            JOIN unnest($1::uuid[], $2::text[], $3::int[]) AS k(run_id, step_id, attempt)
              ON a.run_id = k.run_id AND a.step_id = k.step_id AND a.attempt = k.attempt
            WHERE a.status <> 'stale' AND a.run_id = ANY($1::uuid[])
            """,
            [
                PostgresArray.literal(keys.map(\.step.runID)),
                PostgresArray.literal(keys.map(\.step.stepID)),
                PostgresArray.literal(keys.map { Optional($0.attempt) }),
            ]
        )
        var out: [AttemptKey: AttemptResult] = [:]
        for index in 0..<rows.count {
            if let result = AttemptLedger.result(rows[index]) { out[result.key] = result }
        }
        return out
    }

    /// Every recorded outcome of a run, in ledger order.
    public func attempts(ofRun runID: String, on db: PostgresConnection) async throws(PostgresError) -> [AttemptResult] {
        let rows = try await db.run(AttemptLedger.ofRunSQL, [runID])
        return (0..<rows.count).compactMap { AttemptLedger.result(rows[$0]) }
    }

    /// Every outcome of run `$1`, in ledger order. The two halves match the two partial
    /// indexes that lead with run_id: a plain `WHERE run_id = $1` can use neither and
    /// scanned the whole ledger (3 ms per run view at 22,000 attempts, most of the
    /// API's database time under load).
    static let ofRunSQL = PreparedStatements.register("gantry_run_attempts", """
        SELECT * FROM (
            SELECT a.seq, \(selectList) FROM attempts a WHERE a.run_id = $1::uuid AND a.status <> 'stale'
            UNION ALL
            SELECT a.seq, \(selectList) FROM attempts a WHERE a.run_id = $1::uuid AND a.status = 'stale'
        ) a ORDER BY a.seq
        """)

    /// The columns `result(_:)` reads, from `attempts a`, with times in ms.
    static let selectList = """
        a.run_id, a.step_id, a.attempt, a.kind, a.status, a.worker, a.exit_code, a.error, a.retryable, a.outputs, a.log_tail,
        a.log_sha256, (extract(epoch FROM a.started_at) * 1000000)::bigint AS started_us,
        (extract(epoch FROM a.finished_at) * 1000000)::bigint AS finished_us, a.delivery_id
        """

    /// The plain multi-row insert of every batch, prepared on each connection: its plan is the
    /// same for any batch (a function scan of the arrays), and parsing and planning it again
    /// was 1.9 µs of server time per attempt in batches of ~38 (pg_stat_statements, bench).
    static let recordSQL = PreparedStatements.register("gantry_record_attempts", PostgresConnection.insert(conflict: nil))

    static let columns = "run_id, step_id, attempt, kind, status, worker, exit_code, error, retryable, outputs, log_tail, log_sha256, started_at, finished_at, delivery_id"

    static func result(_ row: PostgresRow) -> AttemptResult? {
        guard let run = row.string("run_id"), let step = row.string("step_id"), let attempt = row.int("attempt"),
              let kind = row.string("kind"), let status = row.string("status").flatMap(AttemptStatus.init(rawValue:)),
              let worker = row.string("worker"), let started = row.int64("started_us"), let finished = row.int64("finished_us")
        else { return nil }
        return AttemptResult(
            key: AttemptKey(step: StepKey(runID: run, stepID: step), attempt: attempt),
            kind: kind, status: status, worker: worker,
            exitCode: row.int("exit_code").map { Int32(truncatingIfNeeded: $0) },
            error: row.string("error"), retryable: row.bool("retryable") ?? true,
            outputs: row.string("outputs") ?? "{}", logTail: row.string("log_tail"), logSHA256: row.string("log_sha256"),
            startedAtUs: started, finishedAtUs: finished,
            deliveryID: row.string("delivery_id") ?? ""
        )
    }
}

extension PostgresConnection {
    fileprivate func recordIsolated(_ all: [AttemptResult]) throws(PostgresError) -> [AttemptKey: AttemptLedger.Outcome] {
        var outcomes: [AttemptKey: AttemptLedger.Outcome] = [:]
        var stale = all.filter { $0.status == .stale }
        for result in stale { outcomes[result.key] = .stale(current: nil) }
        let results = all.filter { $0.status != .stale }
        if try insertFresh(results) {
            for result in results { outcomes[result.key] = .recorded }
        } else {
            let inserted = try query(
                Self.insert(conflict: "(run_id, step_id, attempt) WHERE status <> 'stale'") + " RETURNING run_id, step_id, attempt",
                Self.arrays(results)
            )
            for index in 0..<inserted.count {
                let row = inserted[index]
                if let run = row.string("run_id"), let step = row.string("step_id"), let attempt = row.int("attempt") {
                    outcomes[AttemptKey(step: StepKey(runID: run, stepID: step), attempt: attempt)] = .recorded
                }
            }
            let conflicts = results.filter { outcomes[$0.key] == nil }
            if !conflicts.isEmpty {
                try resolveConflicts(conflicts, outcomes: &outcomes, stale: &stale)
            }
        }
        if !stale.isEmpty {
            try query(Self.insert(conflict: "(run_id, step_id, attempt, worker, delivery_id) WHERE status = 'stale'"), Self.arrays(stale))
        }
        return outcomes
    }

    /// Inserts outcomes none of which has a current one yet; false (and nothing written) when
    /// one has. Nearly always none has, and a plain insert is much cheaper than ON CONFLICT on
    /// every row (a speculative insertion, one more WAL record per row: 11.7-13.2 µs per row
    /// plain, 18.5-19.0 with ON CONFLICT, psql, 20,000 rows in batches of 40). A conflict costs one failed statement, and the
    /// server logs it as an error ("duplicate key value violates unique constraint").
    private func insertFresh(_ results: [AttemptResult]) throws(PostgresError) -> Bool {
        guard !results.isEmpty else { return true }
        do {
            try query(AttemptLedger.recordSQL, Self.arrays(results))
            return true
        } catch where error.sqlState == PostgresError.uniqueViolation {
            return false
        }
    }

    private func resolveConflicts(
        _ conflicts: [AttemptResult], outcomes: inout [AttemptKey: AttemptLedger.Outcome], stale: inout [AttemptResult]
    ) throws(PostgresError) {
        // Someone recorded these attempts first. Ours (same worker, delivery and
        // status) means a commit we retried. Anything else makes ours stale, including
        // the reaper's `lost`, which names the silent worker and its delivery.
        let existing = try query(
            """
            SELECT a.run_id, a.step_id, a.attempt, a.status, a.worker, a.delivery_id FROM attempts a
            JOIN unnest($1::uuid[], $2::text[], $3::int[]) AS k(run_id, step_id, attempt)
              ON a.run_id = k.run_id AND a.step_id = k.step_id AND a.attempt = k.attempt
            WHERE a.status <> 'stale' AND a.run_id = ANY($1::uuid[])
            """,
            [
                PostgresArray.literal(conflicts.map(\.key.step.runID)),
                PostgresArray.literal(conflicts.map(\.key.step.stepID)),
                PostgresArray.literal(conflicts.map { Optional($0.key.attempt) }),
            ]
        )
        var owners: [AttemptKey: (status: AttemptStatus, worker: String, delivery: String)] = [:]
        for index in 0..<existing.count {
            let row = existing[index]
            guard let run = row.string("run_id"), let step = row.string("step_id"), let attempt = row.int("attempt"),
                  let status = row.string("status").flatMap(AttemptStatus.init(rawValue:)) else { continue }
            owners[AttemptKey(step: StepKey(runID: run, stepID: step), attempt: attempt)] =
                (status, row.string("worker") ?? "", row.string("delivery_id") ?? "")
        }
        for result in conflicts {
            guard let owner = owners[result.key] else { continue }
            if owner.worker == result.worker && owner.delivery == result.deliveryID && owner.status == result.status {
                outcomes[result.key] = .alreadyRecorded
            } else {
                outcomes[result.key] = .stale(current: owner.status)
                var copy = result
                copy.status = .stale
                stale.append(copy)
            }
        }
    }

    /// The multi-row insert of `arrays(_:)`; with `conflict`, doing nothing on a conflict with that unique index.
    fileprivate static func insert(conflict: String?) -> String {
        let insert = """
        INSERT INTO attempts (\(AttemptLedger.columns))
        SELECT run_id, step_id, attempt, kind, status, worker, exit_code, error, retryable, outputs, log_tail, log_sha256,
               timestamptz 'epoch' + started_us * interval '1 microsecond',
               timestamptz 'epoch' + finished_us * interval '1 microsecond', delivery_id
        FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int[],
                    $8::text[], $9::bool[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::text[])
             AS v(run_id, step_id, attempt, kind, status, worker, exit_code, error, retryable, outputs, log_tail, log_sha256,
                  started_us, finished_us, delivery_id)
        """
        return conflict.map { insert + " ON CONFLICT \($0) DO NOTHING" } ?? insert
    }

    private static func arrays(_ results: [AttemptResult]) -> [String?] {
        [
            PostgresArray.literal(results.map(\.key.step.runID)),
            PostgresArray.literal(results.map(\.key.step.stepID)),
            PostgresArray.literal(results.map { Optional($0.key.attempt) }),
            PostgresArray.literal(results.map(\.kind)),
            PostgresArray.literal(results.map(\.status.rawValue)),
            PostgresArray.literal(results.map(\.worker)),
            PostgresArray.literal(results.map(\.exitCode)),
            PostgresArray.literal(results.map(\.error)),
            PostgresArray.literal(results.map { $0.retryable ? "t" : "f" }),
            PostgresArray.literal(results.map(\.outputs)),
            PostgresArray.literal(results.map(\.logTail)),
            PostgresArray.literal(results.map(\.logSHA256)),
            PostgresArray.literal(results.map { Optional($0.startedAtUs) }),
            PostgresArray.literal(results.map { Optional($0.finishedAtUs) }),
            PostgresArray.literal(results.map(\.deliveryID)),
        ]
    }
}
