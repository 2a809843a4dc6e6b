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
    public var startedAtUs: Int64
    public var finishedAtUs: Int64
    /// The stream entry that delivered the attempt; with `worker` it tells a worker's
    /// own earlier write (a retried commit) from another writer's.
    public var deliveryID: String

    public init(
        key: AttemptKey, kind: String, status: AttemptStatus, worker: String,
        exitCode: Int32? = nil, error: String? = nil, retryable: Bool = true, outputs: String = "{}",
        logTail: String? = nil, startedAtUs: Int64, finishedAtUs: Int64, deliveryID: String
    ) {
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
    public init?(eventFields fields: [(String, String)]) {
        var map: [String: String] = [:]
        for (name, value) in fields { map[name] = value }
        guard map["type"] == "attempt",
              let run = map["run"], let step = map["step"],
              let attemptText = map["attempt"], let attempt = Int(attemptText),
              let kind = map["kind"],
              let statusText = map["status"], let status = AttemptStatus(rawValue: statusText),
              let worker = map["worker"],
              let started = map["started"].flatMap({ Int64($0) }),
              let finished = map["finished"].flatMap({ Int64($0) }),
              let delivery = map["delivery"]
        else { return nil }
        self.init(
            key: AttemptKey(step: StepKey(runID: run, stepID: step), attempt: attempt),
            kind: kind, status: status, worker: worker,
            exitCode: map["exit"].flatMap { Int32($0) }, error: map["error"],
            retryable: map["retryable"] != "0",
            startedAtUs: started, finishedAtUs: finished, deliveryID: delivery
        )
    }
}
