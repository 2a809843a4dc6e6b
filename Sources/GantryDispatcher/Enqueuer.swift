import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime

/// Creates one-step runs and puts their first attempts in the kind's stream:
/// what `gantry enqueue` and the benchmark do.
///
/// The runs are committed in Postgres before anything reaches Redis, so a
/// crash in between leaves steps the reconciler will enqueue, never jobs
/// Postgres does not know.
public struct Enqueuer: Sendable {
    /// What to enqueue.
    public struct Request: Sendable {
        public var kind: String
        /// The step's `with:` inputs, a JSON object as text.
        public var inputs: String
        public var policy: RetryPolicy
        public var timeout: Duration
        /// What the runs are called in listings.
        public var pipeline: String
        public var submitter: String

        public init(kind: String, inputs: String, policy: RetryPolicy, timeout: Duration, pipeline: String, submitter: String) {
            self.kind = kind
            self.inputs = inputs
            self.policy = policy
            self.timeout = timeout
            self.pipeline = pipeline
            self.submitter = submitter
        }
    }

    public let keys: QueueKeys
    /// Runs created per transaction and per pipelined write.
    public var batchSize = 2_000
    /// Kept across calls: it remembers the kinds' job formats for a second (`WorkQueue.jobFormats`), so a
    /// caller enqueuing one run at a time does not read the workers' heartbeats before each.
    private let queue: WorkQueue

    public init(keys: QueueKeys) {
        self.keys = keys
        self.queue = WorkQueue(keys: keys)
    }

    /// Creates `count` runs of one step each and enqueues them; returns their ids in order.
    public func enqueue(_ request: Request, count: Int, redis: RedisConnection, db: PostgresConnection) async throws -> [String] {
        try await enqueueJobs(request, count: count, redis: redis, db: db).map(\.runID)
    }

    /// As `enqueue`, returning the first attempt of each run as it went into the stream
    /// (with its enqueue time, for latency measurements).
    public func enqueueJobs(_ request: Request, count: Int, redis: RedisConnection, db: PostgresConnection) async throws -> [Job] {
        var random = BufferedSystemRandom()
        var enqueued: [Job] = []
        enqueued.reserveCapacity(count)
        var remaining = count
        while remaining > 0 {
            let size = min(batchSize, remaining)
            remaining -= size
            let nowMs = WallClock.nowMs()
            let runs = (0..<size).map { _ -> NewRun in
                let id = Identifiers.newRunID(nowMs: nowMs, using: &random)
                let step = StepRecord(
                    key: StepKey(runID: id, stepID: "main"), kind: request.kind, timeout: request.timeout,
                    inputs: request.inputs, state: StepState(status: .queued, attempt: 1, policy: request.policy)
                )
                return NewRun(id: id, namespace: keys.namespace, pipeline: request.pipeline, submitter: request.submitter, steps: [step])
            }
            try await RunStore().create(runs, on: db)
            let nowUs = WallClock.nowUs()
            let jobs = runs.flatMap { $0.steps.map { $0.job(attempt: 1, nowUs: nowUs) } }
            try await queue.enqueue(jobs, on: redis)
            enqueued += jobs
        }
        return enqueued
    }
}
