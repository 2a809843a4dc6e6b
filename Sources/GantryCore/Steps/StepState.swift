/// What the dispatcher knows about one step: the row of the steps table.
public struct StepState: Sendable, Equatable {
    public var status: StepStatus
    /// The number of the latest attempt (queued, running or finished).
    public var attempt: Int
    /// Attempts that count against `policy.maxAttempts` (drains do not count).
    public var charged: Int
    public var policy: RetryPolicy
    /// When the next attempt is due, in ms since the epoch, while `retrying`.
    public var dueAtMs: Int64?
    /// The last failure, one redacted line.
    public var lastError: String?

    public init(
        status: StepStatus = .queued, attempt: Int = 1, charged: Int = 0,
        policy: RetryPolicy, dueAtMs: Int64? = nil, lastError: String? = nil
    ) {
        self.status = status
        self.attempt = attempt
        self.charged = charged
        self.policy = policy
        self.dueAtMs = dueAtMs
        self.lastError = lastError
    }
}

/// Something that happened to a step.
public enum StepEvent: Sendable, Equatable {
    /// An attempt finished (from a worker's report or the reaper).
    case attemptFinished(attempt: Int, status: AttemptStatus, exitCode: Int32?, retryable: Bool, error: String?)
    /// A user canceled the step's run.
    case canceled
}

/// What the dispatcher must do after a transition.
public enum StepCommand: Sendable, Equatable {
    /// Put this attempt in the kind's stream now.
    case enqueue(attempt: Int)
    /// Put this attempt in the delayed set, due at `dueAtMs`.
    case scheduleRetry(attempt: Int, dueAtMs: Int64)
    /// The step reached a terminal status.
    case finished(StepStatus)
}
