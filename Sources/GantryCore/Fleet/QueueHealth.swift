/// One queue as operators see it — a kind's stream, for one pool (`build`, `build@production`) —
/// read from Redis and the fleet at one moment.
public struct QueueFigures: Sendable, Equatable {
    /// The queue: `kind` or `kind@pool`.
    public var queue: String
    /// Entries not delivered to any worker yet.
    public var waiting: Int64
    /// Entries a worker holds (delivered, not acknowledged).
    public var leased: Int64
    /// Retries of this queue waiting for their backoff.
    public var delayed: Int
    /// Deliveries that were not valid jobs, set aside.
    public var dead: Int64
    /// When the oldest waiting entry was enqueued (ms since the epoch); nil when none waits.
    public var oldestWaitingMs: Int64?
    /// Leased entries whose holder has not renewed them for longer than `QueueHealth.unrenewed`.
    public var unrenewed: Int
    /// Live workers that take this queue, and how many of them are draining.
    public var liveWorkers: Int
    public var drainingWorkers: Int
    /// Whether an operator paused it.
    public var paused: Bool

    public init(
        queue: String, waiting: Int64, leased: Int64, delayed: Int, dead: Int64, oldestWaitingMs: Int64?, unrenewed: Int,
        liveWorkers: Int, drainingWorkers: Int, paused: Bool
    ) {
        self.queue = queue
        self.waiting = waiting
        self.leased = leased
        self.delayed = delayed
        self.dead = dead
        self.oldestWaitingMs = oldestWaitingMs
        self.unrenewed = unrenewed
        self.liveWorkers = liveWorkers
        self.drainingWorkers = drainingWorkers
        self.paused = paused
    }

    /// The step kind, without the pool.
    public var kind: String { Identifiers.baseKind(queue) }
    /// The pool; nil for the default one.
    public var pool: String? { queue.split(separator: "@", maxSplits: 1).dropFirst().first.map(String.init) }
}

/// What is wrong with a queue or a worker, in words an operator acts on: what is stuck and
/// what to do. Pure: the figures and the time go in, the lines come out.
public enum QueueHealth {
    /// A waiting step older than this, with workers that could take it, is stuck.
    public static let waitingTooLong: Duration = .seconds(60)
    /// A lease not renewed for this long has lost its worker; the dispatchers' reaper should
    /// have taken it back within a few seconds of its lease.
    public static let unrenewed: Duration = .seconds(60)

    /// The queue's problems, the most urgent first; empty when it is healthy.
    public static func problems(_ queue: QueueFigures, nowMs: Int64) -> [String] {
        var problems: [String] = []
        let waitingMs = queue.oldestWaitingMs.map { max(0, nowMs - $0) }
        if queue.waiting > 0 || queue.delayed > 0 {
            if queue.paused {
                problems.append("paused: \(queue.waiting) waiting steps stay queued (gantry resume \(resumeArguments(queue)))")
            } else if queue.liveWorkers == 0 {
                problems.append(
                    "no live worker takes \(queue.queue): \(queue.waiting) waiting; start one (gantry worker --kind \(queue.kind)\(queue.pool.map { " --pool \($0)" } ?? ""))"
                )
            } else if queue.liveWorkers == queue.drainingWorkers {
                problems.append("every worker of \(queue.queue) is draining: \(queue.waiting) waiting; start one that is not")
            } else if let waitingMs, waitingMs > waitingTooLong.milliseconds {
                problems.append(
                    "oldest waiting step enqueued \(DurationParser.format(.milliseconds(waitingMs / 1_000 * 1_000))) ago with \(queue.liveWorkers) live workers: they are full or stuck (gantry fleet)"
                )
            }
        }
        if queue.unrenewed > 0 {
            problems.append(
                "\(queue.unrenewed) leased steps not renewed for over \(DurationParser.format(unrenewed)): their worker is gone and no dispatcher takes them back (is a dispatcher running?)"
            )
        }
        if queue.dead > 0 {
            problems.append("\(queue.dead) dead-lettered deliveries (gantry dlq list --kind \(queue.queue))")
        }
        return problems
    }

    /// A worker's problem, if it has one: a heartbeat older than its lease (it died, hangs or
    /// lost Redis); nil for a live worker.
    public static func problem(worker: String, seenMs: Int64, leaseMs: Int64, nowMs: Int64) -> String? {
        let age = nowMs - seenMs
        guard seenMs > 0, age > leaseMs else { return nil }
        return "heartbeat stopped \(DurationParser.format(.milliseconds(age / 1_000 * 1_000))) ago (lease \(DurationParser.format(.milliseconds(leaseMs)))): its steps go to other workers once the lease is reclaimed"
    }

    private static func resumeArguments(_ queue: QueueFigures) -> String {
        queue.kind + (queue.pool.map { " --pool \($0)" } ?? "")
    }
}
