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

    /// This outcome's fields in a result event: everything the dispatcher decides on in one
    /// field, `r`, as space-separated words
    /// `RUN STEP ATTEMPT KIND STATUS RETRYABLE(1|0) STARTED_US FINISHED_US DELIVERY EXIT(-) WORKER`
    /// (the worker's name last: it may contain spaces), then the error line, `e`, when there is one.
    ///
    /// A worker writes the outcomes of a batch into one event, these pairs one after another (an
    /// `e` belongs to the `r` before it): one stream entry, one XADD and one XACK per batch instead
    /// of per attempt. One field instead of twelve name/value pairs per outcome for the same
    /// reason: each pair was two strings to format, store, parse and allocate (docs/benchmarks.md).
    public var eventFields: [(String, String)] {
        var fields = [("r", eventWords)]
        if let error { fields.append(("e", error)) }
        return fields
    }

    /// The words of the `r` field (and of the one-outcome `result` field before it).
    var eventWords: String {
        var text = key.step.runID
        text.reserveCapacity(key.step.runID.utf8.count + key.step.stepID.utf8.count + kind.utf8.count + worker.utf8.count + 80)
        for word in [
            key.step.stepID, String(key.attempt), kind, status.rawValue, retryable ? "1" : "0",
            String(startedAtUs), String(finishedAtUs), deliveryID, exitCode.map { String($0) } ?? "-", worker,
        ] {
            text += " "
            text += word
        }
        return text
    }

    /// The outcomes in a result event, in order, and how many of its outcomes were malformed.
    /// Reads the batch form of `eventFields`, the one-outcome form of the release before it
    /// (`result`, `error`) and the twelve-field form of releases before that (`type=attempt`,
    /// `run`, `step`, …), so events in the stream survive a rolling upgrade.
    public static func outcomes(inEvent fields: [(String, String)]) -> (outcomes: [AttemptResult], malformed: Int) {
        guard fields.first?.0 == "r" else {
            guard let single = AttemptResult(eventFields: fields) else { return ([], 1) }
            return ([single], 0)
        }
        var outcomes: [AttemptResult] = []
        outcomes.reserveCapacity(fields.count)
        var malformed = 0
        var index = 0
        while index < fields.count {
            let (name, words) = fields[index]
            index += 1
            guard name == "r" else {
                malformed += 1
                continue
            }
            var error: String?
            if index < fields.count, fields[index].0 == "e" {
                error = fields[index].1
                index += 1
            }
            if let outcome = AttemptResult(words: words, error: error) { outcomes.append(outcome) } else { malformed += 1 }
        }
        return (outcomes, malformed)
    }

    /// Decodes a one-outcome result event; `nil` when a field is missing or malformed: the
    /// `result` form and the twelve-field form of earlier releases (see `outcomes(inEvent:)`).
    public init?(eventFields fields: [(String, String)]) {
        var compact: String?, error: String?
        for (name, value) in fields {
            if name == "result" { compact = value } else if name == "error" { error = value }
        }
        guard let compact else {
            self.init(legacyEventFields: fields)
            return
        }
        self.init(words: compact, error: error)
    }

    /// An outcome from its event words and error line.
    init?(words compact: String, error: String?) {
        // Ten words, then the worker's name (the rest of the text, spaces and all).
        let words = compact.spaceSeparatedWords(maxSplits: 10)
        guard words.count == 11, !words[10].isEmpty,
              let attempt = Int(words[2]), let status = AttemptStatus(rawValue: String(words[4])),
              words[5] == "1" || words[5] == "0",
              let started = Int64(words[6]), let finished = Int64(words[7])
        else { return nil }
        var exitCode: Int32?
        if words[9] != "-" {
            guard let code = Int32(words[9]) else { return nil }
            exitCode = code
        }
        guard !words[0].isEmpty, !words[1].isEmpty, !words[3].isEmpty, !words[8].isEmpty else { return nil }
        self.init(
            key: AttemptKey(step: StepKey(runID: String(words[0]), stepID: String(words[1])), attempt: attempt),
            kind: String(words[3]), status: status, worker: String(words[10]), exitCode: exitCode, error: error,
            retryable: words[5] == "1", startedAtUs: started, finishedAtUs: finished, deliveryID: String(words[8])
        )
    }

    /// The twelve-field event of earlier workers.
    private init?(legacyEventFields fields: [(String, String)]) {
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
