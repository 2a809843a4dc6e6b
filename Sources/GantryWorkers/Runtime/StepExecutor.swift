import GantryCore
import Logging

/// Runs the steps of one kind. Every kind (build, scan, deploy …) is one
/// executor registered by name; the worker runtime supplies the context and
/// records what the executor returns or throws.
///
/// An executor must stop promptly when its task is cancelled (timeout, lost
/// lease, drain, run canceled): the runtime waits for it to return.
public protocol StepExecutor: Sendable {
    /// The kind name pipelines use (`kind: build`).
    var kind: String { get }

    /// Runs one attempt. Return outputs on success; throw `StepFailure` to fail
    /// with an exit code and say whether a retry can help. Any other error fails
    /// the attempt as retryable.
    func execute(_ context: StepContext) async throws -> StepOutputs
}

/// Typed outputs of a step (`${{ steps.ID.outputs.NAME }}`).
public typealias StepOutputs = [String: JSONValue]

/// Everything an executor may use while running one attempt.
public struct StepContext: Sendable {
    public let job: Job
    /// The step's `with:` inputs as written: `${{ }}` expressions are still in them.
    /// Executors read them as their kind's struct, through `decodeInputs(_:)`, which resolves
    /// each value as its key says and keeps shell text as written for `ShellExpressions`.
    public let inputs: [String: JSONValue]
    /// Values of the expressions the dispatcher bound (`run.*`, `steps.*.outputs.*`).
    public let bindings: [String: String]
    /// The attempt must be finished by then; the runtime stops it after.
    public let deadline: ContinuousClock.Instant
    /// Lines for the step's log (kept, capped, in the attempt record).
    public let log: StepLog
    /// What the worker's pool may resolve and pass on (from the environments' policies), as
    /// it stood when the attempt started.
    public let scope: SecretScope
    /// The worker's logger; `logger` adds the run, step and attempt to it.
    let workerLogger: Logger
    let lease: LeaseCheck

    /// A logger whose lines name the run, step and attempt. Built on use: most
    /// attempts never log, and this is on every attempt's path.
    public var logger: Logger {
        var logger = workerLogger
        logger[metadataKey: "gantry.run.id"] = "\(job.runID)"
        logger[metadataKey: "gantry.step.id"] = "\(job.stepID)"
        logger[metadataKey: "gantry.attempt"] = "\(job.attempt)"
        return logger
    }

    /// `value` with every bound expression replaced by its value; unbound ones stay as written.
    public func resolved(_ value: JSONValue) -> JSONValue {
        bindings.isEmpty ? value : Expressions.substitute(value, bindings)
    }

    /// `value` resolved for text that people read elsewhere (a notification): every
    /// `${{ secrets.* }}` becomes `***` instead of its value.
    public func resolvedWithoutSecrets(_ value: JSONValue) -> JSONValue {
        var shown = bindings
        for key in shown.keys where key.hasPrefix("secrets.") { shown[key] = "***" }
        return shown.isEmpty ? value : Expressions.substitute(value, shown)
    }

    /// Throws `LeaseLost` when this worker no longer holds the step's lease.
    /// Call it before every action that changes the outside world (fencing):
    /// another worker may be running the step now.
    public func checkLease() async throws {
        try await lease.check()
    }
}

/// A failed attempt, as the executor reports it.
public struct StepFailure: Error, Sendable, CustomStringConvertible {
    /// One line for the user, without secrets.
    public var message: String
    /// The process exit code, when the step ran a process or pretends to.
    public var exitCode: Int32?
    /// False when retrying cannot help (bad inputs, a gate that said no).
    public var retryable: Bool

    public init(_ message: String, exitCode: Int32? = nil, retryable: Bool = true) {
        self.message = message
        self.exitCode = exitCode
        self.retryable = retryable
    }

    public var description: String { message }
}

/// Thrown by `StepContext.checkLease()` once the lease is gone.
public struct LeaseLost: Error, Sendable, CustomStringConvertible {
    public var description: String { "the lease on this step was lost; another worker owns it now" }
}

/// Asks Redis whether this worker still owns one delivery.
struct LeaseCheck: Sendable {
    let check: @Sendable () async throws -> Void
}
