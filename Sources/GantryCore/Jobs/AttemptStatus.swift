/// How one attempt of a step ended. Stored as its raw value in the attempts ledger.
public enum AttemptStatus: String, Sendable, Codable, CaseIterable {
    /// The executor finished and the step did what it should.
    case succeeded
    /// The executor finished with an error or a non-zero exit code.
    case failed
    /// The attempt ran past its timeout and was stopped.
    case timedOut = "timed_out"
    /// The worker went silent: its lease expired and the reaper reclaimed the step.
    case lost
    /// A worker finished after its lease had been reclaimed; kept for the record, never current.
    case stale
    /// The worker was drained (SIGTERM) before the attempt finished; re-delivered at once.
    case interrupted
    /// The run or step was canceled by a user while this attempt was queued or running.
    case canceled
    /// The delivery was not a valid job; it went to the dead-letter stream.
    case invalid
}

/// Where a step is in its life. Stored as its raw value in the steps table.
public enum StepStatus: String, Sendable, Codable, CaseIterable {
    /// Waits for the steps it needs (or for its run to start).
    case pending
    /// An approval gate waiting for its approvers.
    case awaitingApproval = "awaiting_approval"
    /// An attempt is in its kind's stream, or held by a worker.
    case queued
    /// The last attempt failed; the next waits in the delayed set until its due time.
    case retrying
    case succeeded
    /// Attempts are exhausted or the failure was not retryable: listed as dead.
    case failed
    case canceled
    /// Will not run: a path filter or condition said so, or something before it failed.
    case skipped

    /// Whether the step will never change again (short of `gantry retry`).
    public var isTerminal: Bool {
        switch self {
        case .pending, .awaitingApproval, .queued, .retrying: false
        case .succeeded, .failed, .canceled, .skipped: true
        }
    }
}
