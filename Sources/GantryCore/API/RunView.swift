/// A run as the API shows it and the CLI prints it: its context, each step's
/// state with its attempts, and why anything waits. Times are ISO 8601 strings.
public struct RunView: Codable, Sendable, Equatable {
    public var id: String
    public var pipeline: String
    public var environment: String?
    public var sha: String?
    public var ref: String?
    public var submitter: String
    /// `waiting`, `running`, `succeeded`, `failed` or `canceled`.
    public var status: String
    public var phase: String
    public var definitionSHA256: String?
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    public var durationMs: Int64?
    /// Why the run has not started ("behind run R in group production").
    public var waitingFor: String?
    /// Why it stopped early, when it did.
    public var stopReason: String?
    public var steps: [StepView]
    /// The `finally` and `on_failure` steps that failed (nil when none did): a run whose
    /// deploy succeeded but whose notification failed says so.
    public var cleanupFailed: [String]?

    public init(
        id: String, pipeline: String, environment: String?, sha: String?, ref: String?, submitter: String, status: String,
        phase: String, definitionSHA256: String?, createdAt: String, startedAt: String?, finishedAt: String?,
        durationMs: Int64?, waitingFor: String?, stopReason: String?, steps: [StepView]
    ) {
        self.id = id
        self.pipeline = pipeline
        self.environment = environment
        self.sha = sha
        self.ref = ref
        self.submitter = submitter
        self.status = status
        self.phase = phase
        self.definitionSHA256 = definitionSHA256
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.durationMs = durationMs
        self.waitingFor = waitingFor
        self.stopReason = stopReason
        self.steps = steps
        let failed = steps.filter { $0.section != "main" && $0.status == "failed" }.map(\.id)
        self.cleanupFailed = failed.isEmpty ? nil : failed
    }

    /// Whether the run will not change again (short of a retry).
    public var isFinished: Bool { status == "succeeded" || status == "failed" || status == "canceled" }

    enum CodingKeys: String, CodingKey {
        case id, pipeline, environment, sha, ref, submitter, status, phase
        case definitionSHA256 = "definition_sha256"
        case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at", durationMs = "duration_ms"
        case waitingFor = "waiting_for", stopReason = "stop_reason", steps, cleanupFailed = "cleanup_failed"
    }

    /// The run's outcome in words, with the cleanup steps that failed: "succeeded, but finally step notify failed".
    public var outcome: String {
        guard let failed = cleanupFailed else { return status }
        let sections = Set(steps.filter { failed.contains($0.id) }.map(\.section)).sorted().joined(separator: "/")
        return "\(status), but \(sections) step\(failed.count == 1 ? "" : "s") \(failed.joined(separator: ", ")) failed"
    }
}

/// One step of a run.
public struct StepView: Codable, Sendable, Equatable {
    public var id: String
    public var kind: String
    /// `main`, `on_failure` or `finally`.
    public var section: String
    public var needs: [String]
    public var status: String
    /// The latest attempt's number.
    public var attempt: Int
    public var waitingFor: String?
    public var skipReason: String?
    public var lastError: String?
    public var approvals: ApprovalView?
    public var attempts: [AttemptView]
    /// While it runs (status `running`): the worker and when it took the attempt.
    public var worker: String?
    public var startedAt: String?

    public init(
        id: String, kind: String, section: String, needs: [String], status: String, attempt: Int, waitingFor: String?,
        skipReason: String?, lastError: String?, approvals: ApprovalView?, attempts: [AttemptView]
    ) {
        self.id = id
        self.kind = kind
        self.section = section
        self.needs = needs
        self.status = status
        self.attempt = attempt
        self.waitingFor = waitingFor
        self.skipReason = skipReason
        self.lastError = lastError
        self.approvals = approvals
        self.attempts = attempts
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, section, needs, status, attempt
        case waitingFor = "waiting_for", skipReason = "skip_reason", lastError = "last_error", approvals, attempts
        case worker, startedAt = "started_at"
    }
}

/// An approval gate's progress and decisions.
public struct ApprovalView: Codable, Sendable, Equatable {
    public var required: Int
    public var approvedBy: [String]
    public var decisions: [Decision]

    public struct Decision: Codable, Sendable, Equatable {
        public var decision: String
        public var by: String
        public var comment: String?
        public var at: String

        public init(decision: String, by: String, comment: String?, at: String) {
            self.decision = decision
            self.by = by
            self.comment = comment
            self.at = at
        }
    }

    /// `pending`, `approved`, `rejected`, `timed_out` or `canceled` (nil from servers before it).
    public var state: String?
    /// When the gate stops waiting (ISO 8601), once it has been reached.
    public var deadline: String?

    public init(required: Int, approvedBy: [String], decisions: [Decision], state: String? = nil, deadline: String? = nil) {
        self.required = required
        self.approvedBy = approvedBy
        self.decisions = decisions
        self.state = state
        self.deadline = deadline
    }

    enum CodingKeys: String, CodingKey {
        case required, approvedBy = "approved_by", decisions, state, deadline
    }
}

/// How an approval gate ended, read from its step: a rejection and a timeout both fail
/// the step, and must never look alike.
public enum ApprovalOutcome {
    /// How the step's error of a gate that timed out begins (the RunMachine writes it).
    public static let timedOutPrefix = "approval timed out at"

    /// The gate's state for a step of this status and error.
    public static func state(stepStatus: String, lastError: String?) -> String {
        switch stepStatus {
        case "awaiting_approval", "pending": "pending"
        case "succeeded": "approved"
        case "failed": lastError?.hasPrefix(timedOutPrefix) == true ? "timed_out" : "rejected"
        default: "canceled"
        }
    }
}

/// One attempt of a step, from the ledger.
public struct AttemptView: Codable, Sendable, Equatable {
    public var attempt: Int
    public var status: String
    public var worker: String
    public var exitCode: Int32?
    public var error: String?
    public var startedAt: String
    public var finishedAt: String
    public var durationMs: Double
    public var outputs: [String: JSONValue]
    /// The SHA-256 of the attempt's whole log (see `AttemptResult.logSHA256`).
    public var logSHA256: String?

    public init(
        attempt: Int, status: String, worker: String, exitCode: Int32?, error: String?, startedAt: String,
        finishedAt: String, durationMs: Double, outputs: [String: JSONValue], logSHA256: String? = nil
    ) {
        self.logSHA256 = logSHA256
        self.attempt = attempt
        self.status = status
        self.worker = worker
        self.exitCode = exitCode
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.durationMs = durationMs
        self.outputs = outputs
    }

    enum CodingKeys: String, CodingKey {
        case attempt, status, worker, exitCode = "exit_code", error
        case startedAt = "started_at", finishedAt = "finished_at", durationMs = "duration_ms", outputs
        case logSHA256 = "log_sha256"
    }
}
