import Foundation

/// One attempt of one step, as it travels through a kind's stream to a worker.
///
/// The envelope is a flat list of stream fields, not a JSON blob, so Redis and
/// Lua can read it and a worker can refuse a malformed one field by field
/// (it then goes to the kind's dead-letter stream with the reason).
public struct Job: Sendable, Equatable {
    public var runID: String
    public var stepID: String
    public var attempt: Int
    public var kind: String
    /// How long one attempt may run before the worker stops it (`timed_out`).
    public var timeout: Duration
    /// The step's `with:` inputs, a JSON object as text (expressions already resolved, secrets not).
    public var inputs: String
    /// When the attempt was put in the stream, in µs since the Unix epoch (pickup latency).
    public var enqueuedAtUs: Int64
    /// Set by the reconciler when it re-enqueues from Postgres: the worker checks the
    /// ledger first, because the attempt may have finished while Redis lost its trace.
    public var recovered: Bool
    /// Values of the inputs' `${{ }}` expressions bound by the dispatcher, a JSON object
    /// of strings as text (see `Expressions`); secrets are never among them.
    public var bindings: String

    public init(
        runID: String, stepID: String, attempt: Int, kind: String,
        timeout: Duration, inputs: String = "{}", enqueuedAtUs: Int64, recovered: Bool = false, bindings: String = "{}"
    ) {
        self.runID = runID
        self.stepID = stepID
        self.attempt = attempt
        self.kind = kind
        self.timeout = timeout
        self.inputs = inputs
        self.enqueuedAtUs = enqueuedAtUs
        self.recovered = recovered
        self.bindings = bindings
    }

    /// The step kind, without the pool its queue belongs to (what runs it, what the ledger records).
    public var baseKind: String { Identifiers.baseKind(kind) }

    /// The step this attempt belongs to.
    public var key: StepKey { StepKey(runID: runID, stepID: stepID) }

    /// The stream fields of the first format (`JobFormat.fields`), in a fixed order.
    public var fields: [(String, String)] { fields(.fields) }

    /// The stream fields in `format`.
    public func fields(_ format: JobFormat) -> [(String, String)] {
        switch format {
        case .fields:
            var out: [(String, String)] = [
                ("v", "1"),
                ("run", runID),
                ("step", stepID),
                ("attempt", String(attempt)),
                ("kind", kind),
                ("timeout_ms", String(timeout.milliseconds)),
                ("with", inputs),
                ("enq", String(enqueuedAtUs)),
            ]
            if recovered { out.append(("rec", "1")) }
            if bindings != "{}" { out.append(("x", bindings)) }
            return out
        case .compact:
            // Seven words; the enqueue time last, where the delayed-retry mover restamps it.
            var header = runID
            header.reserveCapacity(runID.utf8.count + stepID.utf8.count + kind.utf8.count + 40)
            for word in [stepID, String(attempt), kind, String(timeout.milliseconds), recovered ? "rec" : "-", String(enqueuedAtUs)] {
                header += " "
                header += word
            }
            var out = [("job", header), ("with", inputs)]
            if bindings != "{}" { out.append(("x", bindings)) }
            return out
        }
    }

    /// Decodes and validates stream fields of either format; a bad field is named in the error.
    public init(fields: [(String, String)]) throws(JobDecodingError) {
        // One pass over the fields into named slots, no dictionary: every delivery is decoded.
        var version: String?, runText: String?, stepText: String?, attemptText: String?, kindText: String?
        var timeoutText: String?, with: String?, enqueuedText: String?, recovered: String?, bindingsText: String?
        var header: String?
        for (name, value) in fields {
            switch name {
            case "job": header = value
            case "v": version = value
            case "run": runText = value
            case "step": stepText = value
            case "attempt": attemptText = value
            case "kind": kindText = value
            case "timeout_ms": timeoutText = value
            case "with": with = value
            case "enq": enqueuedText = value
            case "rec": recovered = value
            case "x": bindingsText = value
            default: break
            }
        }
        func field(_ value: String?, _ name: String) throws(JobDecodingError) -> String {
            guard let value else { throw JobDecodingError(field: name, problem: "is missing") }
            return value
        }
        if let header {
            // The compact format: seven words.
            let words = header.spaceSeparatedWords()
            guard words.count == 7 else {
                throw JobDecodingError(field: "job", problem: "must be 7 words (run step attempt kind timeout_ms flags enqueued_us), not \(words.count)")
            }
            guard words[5] == "-" || words[5] == "rec" else {
                throw JobDecodingError(field: "job", problem: "flags must be '-' or 'rec'")
            }
            runText = String(words[0])
            stepText = String(words[1])
            attemptText = String(words[2])
            kindText = String(words[3])
            timeoutText = String(words[4])
            recovered = words[5] == "rec" ? "1" : nil
            enqueuedText = String(words[6])
        } else {
            guard try field(version, "v") == "1" else {
                throw JobDecodingError(field: "v", problem: "is \(version ?? ""), this worker reads version 1 and the compact 'job' field")
            }
        }
        // In the compact format a bad word is reported under the name its field has in the first.
        let run = try field(runText, "run")
        guard Identifiers.isValidRunID(run) else { throw JobDecodingError(field: "run", problem: "is not a run id") }
        let step = try field(stepText, "step")
        guard Identifiers.isValidStepID(step) else {
            throw JobDecodingError(field: "step", problem: "must be 1-64 characters of a-z, 0-9, '-' or '_'")
        }
        guard let attempt = Int(try field(attemptText, "attempt")), attempt >= 1, attempt <= 10_000 else {
            throw JobDecodingError(field: "attempt", problem: "must be a whole number from 1")
        }
        let kind = try field(kindText, "kind")
        guard Identifiers.isValidQueueKind(kind) else { throw JobDecodingError(field: "kind", problem: "is not a step kind name") }
        guard let timeoutMs = Int64(try field(timeoutText, "timeout_ms")), timeoutMs > 0 else {
            throw JobDecodingError(field: "timeout_ms", problem: "must be a positive number of milliseconds")
        }
        let inputs = try field(with, "with")
        guard JSONValue.parseObject(inputs) != nil else {
            throw JobDecodingError(field: "with", problem: "is not a JSON object")
        }
        guard let enqueued = Int64(try field(enqueuedText, "enq")) else {
            throw JobDecodingError(field: "enq", problem: "must be a timestamp in microseconds")
        }
        let bindings = bindingsText ?? "{}"
        guard bindings == "{}" || JSONValue.parseObject(bindings) != nil else {
            throw JobDecodingError(field: "x", problem: "is not a JSON object")
        }
        self.init(
            runID: run, stepID: step, attempt: attempt, kind: kind,
            timeout: .milliseconds(timeoutMs), inputs: inputs,
            enqueuedAtUs: enqueued, recovered: recovered == "1", bindings: bindings
        )
    }
}

/// How a job is written into its kind's stream. Workers read both formats; a writer uses
/// `.compact` only for a kind whose live workers all say they read it (their heartbeats),
/// so workers of a release before it keep getting jobs they can read during a rolling upgrade.
public enum JobFormat: Int, Sendable, Comparable, CaseIterable {
    /// Eight field pairs (`v=1`, `run`, `step`, `attempt`, `kind`, `timeout_ms`, `with`, `enq`).
    case fields = 1
    /// Two field pairs: `job` (run, step, attempt, kind, timeout_ms, flags and enqueue time in
    /// µs, as words) and `with`; `x` when there are bindings. A third of the strings Redis
    /// parses and sends, and a worker allocates, per delivery.
    case compact = 2

    public static func < (a: JobFormat, b: JobFormat) -> Bool { a.rawValue < b.rawValue }
}

/// Why stream fields are not a job: which field, and what is wrong with it.
public struct JobDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let problem: String
    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }
    public var description: String { "job field '\(field)' \(problem)" }
}

/// Identifies a step within its run.
public struct StepKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var runID: String
    public var stepID: String
    public init(runID: String, stepID: String) {
        self.runID = runID
        self.stepID = stepID
    }
    public static func < (a: StepKey, b: StepKey) -> Bool {
        (a.runID, a.stepID) < (b.runID, b.stepID)
    }
    public var description: String { "\(runID)/\(stepID)" }
}

/// Identifies one attempt of a step; attempt records are keyed by it.
public struct AttemptKey: Hashable, Sendable, CustomStringConvertible {
    public var step: StepKey
    public var attempt: Int
    public init(step: StepKey, attempt: Int) {
        self.step = step
        self.attempt = attempt
    }
    public var description: String { "\(step)#\(attempt)" }
}
