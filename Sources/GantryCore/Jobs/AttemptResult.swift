/// The outcome of one attempt, as a worker (or the reaper) records it in the
/// ledger and reports it on the events stream.
public struct AttemptResult: Sendable, Equatable {
    public var key: AttemptKey
    public var kind: String
    public var status: AttemptStatus
    /// The worker that ran it (for `lost`, the worker that went silent).
    public var worker: String
    public var exitCode: Int32?
    /// One line, already redacted; `nil` on success.
    public var error: String?
    /// Whether the executor allows another attempt (false for, e.g., invalid inputs).
    public var retryable: Bool
    /// Step outputs as a JSON object text.
    public var outputs: String
    /// The last lines of the step's log, redacted; kept in the ledger, not sent on events.
    public var logTail: String?
    /// The SHA-256 (hex) of the whole redacted log, each line followed by "\n"; nil when nothing was logged.
    public var logSHA256: String?
    public var startedAtUs: Int64
    public var finishedAtUs: Int64
    /// The stream entry that delivered the attempt; with `worker` it tells a worker's
    /// own earlier write (a retried commit) from another writer's.
    public var deliveryID: String

    public init(
        key: AttemptKey, kind: String, status: AttemptStatus, worker: String,
        exitCode: Int32? = nil, error: String? = nil, retryable: Bool = true, outputs: String = "{}",
        logTail: String? = nil, logSHA256: String? = nil, startedAtUs: Int64, finishedAtUs: Int64, deliveryID: String
    ) {
        self.logSHA256 = logSHA256
        self.key = key
        self.kind = kind
        self.status = status
        self.worker = worker
        self.exitCode = exitCode
        self.error = error
        self.retryable = retryable
        self.outputs = outputs
        self.logTail = logTail
        self.startedAtUs = startedAtUs
        self.finishedAtUs = finishedAtUs
        self.deliveryID = deliveryID
    }

    /// Fields of the result event on the events stream.
    public var eventFields: [(String, String)] {
        var out: [(String, String)] = [
            ("type", "attempt"),
            ("run", key.step.runID),
            ("step", key.step.stepID),
            ("attempt", String(key.attempt)),
            ("kind", kind),
            ("status", status.rawValue),
            ("worker", worker),
            ("retryable", retryable ? "1" : "0"),
            ("started", String(startedAtUs)),
            ("finished", String(finishedAtUs)),
            ("delivery", deliveryID),
        ]
        if let exitCode { out.append(("exit", String(exitCode))) }
        if let error { out.append(("error", error)) }
        return out
    }

    /// Decodes a result event; `nil` when a field is missing or malformed.
    /// One pass over the fields, no dictionary: the dispatcher decodes every event.
    public init?(eventFields fields: [(String, String)]) {
        var type: String?, run: String?, step: String?, attempt: Int?, kind: String?, status: AttemptStatus?
        var worker: String?, started: Int64?, finished: Int64?, delivery: String?
        var exitCode: Int32?, error: String?, retryable = true
        for (name, value) in fields {
            switch name {
            case "type": type = value
            case "run": run = value
            case "step": step = value
            case "attempt": attempt = Int(value)
            case "kind": kind = value
            case "status": status = AttemptStatus(rawValue: value)
            case "worker": worker = value
            case "retryable": retryable = value != "0"
            case "started": started = Int64(value)
            case "finished": finished = Int64(value)
            case "delivery": delivery = value
            case "exit": exitCode = Int32(value)
            case "error": error = value
            default: break
            }
        }
        guard type == "attempt", let run, let step, let attempt, let kind, let status, let worker,
              let started, let finished, let delivery
        else { return nil }
        self.init(
            key: AttemptKey(step: StepKey(runID: run, stepID: step), attempt: attempt),
            kind: kind, status: status, worker: worker, exitCode: exitCode, error: error, retryable: retryable,
            startedAtUs: started, finishedAtUs: finished, deliveryID: delivery
        )
    }
}
