import GantryCore
import GantryRuntime

/// A run's row: what was submitted, its context, and where the RunMachine has it.
public struct RunRecord: Sendable, Equatable {
    public var id: String
    public var namespace: String
    public var pipeline: String
    public var environment: String?
    public var sha: String?
    public var ref: String?
    public var submitter: String
    public var params: [String: String]
    /// `waiting` (behind another run of its concurrency group), `running`, or how it ended.
    public var status: String
    public var phase: RunState.Phase
    public var outcome: RunState.Outcome
    public var stopReason: String?
    public var timeoutMs: Int64?
    public var deadlineAtMs: Int64?
    public var concurrencyGroup: String?
    public var idempotencyKey: String?
    public var definitionSHA256: String?
    public var createdAtMs: Int64
    public var startedAtMs: Int64?
    public var finishedAtMs: Int64?

    /// What its steps' expressions can read.
    public var context: Expressions.RunContext {
        // A run that has not started is starting in the transition that binds its first steps.
        Expressions.RunContext(
            id: id, pipeline: pipeline, environment: environment, sha: sha, ref: ref, submitter: submitter, params: params,
            startedAtMs: startedAtMs ?? WallClock.nowMs()
        )
    }

    static let selectList = """
        r.id, r.namespace, r.pipeline, r.environment, r.sha, r.ref, r.submitter, r.params, r.status, r.phase, r.outcome,
        r.stop_reason, r.timeout_ms, r.deadline_at_ms, r.concurrency_group, r.idempotency_key, r.definition_sha256,
        (extract(epoch FROM r.created_at) * 1000)::bigint AS created_ms,
        (extract(epoch FROM r.started_at) * 1000)::bigint AS started_ms,
        (extract(epoch FROM r.finished_at) * 1000)::bigint AS finished_ms
        """

    /// The columns a transition reads, aliased so they can sit beside `StepRecord.selectList`
    /// in one row. Times are left out but the start (which `run.started_at` reads): the UPDATE sets them in SQL.
    static let lockList = """
        r.namespace AS run_namespace, r.pipeline, r.environment, r.sha, r.ref, r.submitter, r.params,
        r.status AS run_status, r.phase, r.outcome, r.stop_reason, r.timeout_ms AS run_timeout_ms, r.deadline_at_ms,
        r.concurrency_group, r.idempotency_key, r.definition_sha256,
        (extract(epoch FROM r.started_at) * 1000)::bigint AS run_started_ms
        """

    /// The positions of the `lockList` columns (and `run_id`) in a result, found once per result.
    struct LockedColumns {
        let id, namespace, pipeline, environment, sha, ref, submitter, params, status, phase, outcome: Int
        let stopReason, timeoutMs, deadlineAtMs, concurrencyGroup, idempotencyKey, definitionSHA256, startedAtMs: Int

        init(_ rows: PostgresRows) {
            id = rows.column("run_id"); namespace = rows.column("run_namespace"); pipeline = rows.column("pipeline")
            environment = rows.column("environment"); sha = rows.column("sha"); ref = rows.column("ref")
            submitter = rows.column("submitter"); params = rows.column("params"); status = rows.column("run_status")
            phase = rows.column("phase"); outcome = rows.column("outcome"); stopReason = rows.column("stop_reason")
            timeoutMs = rows.column("run_timeout_ms"); deadlineAtMs = rows.column("deadline_at_ms")
            concurrencyGroup = rows.column("concurrency_group"); idempotencyKey = rows.column("idempotency_key")
            definitionSHA256 = rows.column("definition_sha256"); startedAtMs = rows.column("run_started_ms")
        }
    }

    /// Reads the `lockList` columns of a row whose `run_id` names the run.
    init?(locked row: PostgresRow, _ c: LockedColumns) {
        guard let id = row.string(at: c.id), let namespace = row.string(at: c.namespace), let pipeline = row.string(at: c.pipeline),
              let submitter = row.string(at: c.submitter), let status = row.string(at: c.status),
              let phase = row.string(at: c.phase).flatMap(RunState.Phase.init(rawValue:)),
              let outcome = row.string(at: c.outcome).flatMap(RunState.Outcome.init(rawValue:))
        else { return nil }
        self.init(
            id: id, namespace: namespace, pipeline: pipeline, environment: row.string(at: c.environment), sha: row.string(at: c.sha),
            ref: row.string(at: c.ref), submitter: submitter, params: RunRecord.params(row.string(at: c.params)), status: status,
            phase: phase, outcome: outcome, stopReason: row.string(at: c.stopReason), timeoutMs: row.int64(at: c.timeoutMs),
            deadlineAtMs: row.int64(at: c.deadlineAtMs), concurrencyGroup: row.string(at: c.concurrencyGroup),
            idempotencyKey: row.string(at: c.idempotencyKey), definitionSHA256: row.string(at: c.definitionSHA256),
            createdAtMs: 0, startedAtMs: row.int64(at: c.startedAtMs), finishedAtMs: nil
        )
    }

    /// Whether the columns a transition writes differ.
    func differsInWrittenFields(from other: RunRecord) -> Bool {
        status != other.status || phase != other.phase || outcome != other.outcome
            || stopReason != other.stopReason || deadlineAtMs != other.deadlineAtMs
    }

    private static func params(_ text: String?) -> [String: String] {
        guard let text, text != "{}" else { return [:] }
        var params: [String: String] = [:]
        for (name, value) in JSONValue.parseObject(text) ?? [:] {
            params[name] = value.stringValue ?? value.jsonText
        }
        return params
    }

    init?(_ row: PostgresRow) {
        guard let id = row.string("id"), let namespace = row.string("namespace"), let pipeline = row.string("pipeline"),
              let submitter = row.string("submitter"), let status = row.string("status"),
              let phase = row.string("phase").flatMap(RunState.Phase.init(rawValue:)),
              let outcome = row.string("outcome").flatMap(RunState.Outcome.init(rawValue:)),
              let created = row.int64("created_ms")
        else { return nil }
        self.init(
            id: id, namespace: namespace, pipeline: pipeline, environment: row.string("environment"), sha: row.string("sha"),
            ref: row.string("ref"), submitter: submitter, params: RunRecord.params(row.string("params")), status: status, phase: phase, outcome: outcome,
            stopReason: row.string("stop_reason"), timeoutMs: row.int64("timeout_ms"), deadlineAtMs: row.int64("deadline_at_ms"),
            concurrencyGroup: row.string("concurrency_group"), idempotencyKey: row.string("idempotency_key"),
            definitionSHA256: row.string("definition_sha256"), createdAtMs: created,
            startedAtMs: row.int64("started_ms"), finishedAtMs: row.int64("finished_ms")
        )
    }

    public init(
        id: String, namespace: String, pipeline: String, environment: String?, sha: String?, ref: String?,
        submitter: String, params: [String: String], status: String, phase: RunState.Phase, outcome: RunState.Outcome,
        stopReason: String?, timeoutMs: Int64?, deadlineAtMs: Int64?, concurrencyGroup: String?, idempotencyKey: String?,
        definitionSHA256: String?, createdAtMs: Int64, startedAtMs: Int64?, finishedAtMs: Int64?
    ) {
        self.id = id
        self.namespace = namespace
        self.pipeline = pipeline
        self.environment = environment
        self.sha = sha
        self.ref = ref
        self.submitter = submitter
        self.params = params
        self.status = status
        self.phase = phase
        self.outcome = outcome
        self.stopReason = stopReason
        self.timeoutMs = timeoutMs
        self.deadlineAtMs = deadlineAtMs
        self.concurrencyGroup = concurrencyGroup
        self.idempotencyKey = idempotencyKey
        self.definitionSHA256 = definitionSHA256
        self.createdAtMs = createdAtMs
        self.startedAtMs = startedAtMs
        self.finishedAtMs = finishedAtMs
    }
}

/// What the dispatcher must do in Redis once transitions are committed.
public struct Effects: Sendable {
    public var enqueue: [Job] = []
    public var schedule: [(job: Job, dueAtMs: Int64)] = []
    /// Attempts whose workers must stop them (recorded `canceled`).
    public var cancel: [AttemptKey] = []
    public var finishedRuns: [(runID: String, status: String)] = []
    /// Steps that failed for good, for the log.
    public var failedSteps: [StepRecord] = []
    /// Runs whose rows changed: the API's event streams of these runs have news.
    public var changedRuns: [String] = []

    public init() {}
}
