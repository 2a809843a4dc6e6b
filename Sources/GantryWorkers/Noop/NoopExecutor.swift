import GantryCore

/// The `noop` kind: does nothing, in every way a real step can. Tests, the demo
/// and the benchmark use it to drive each path of the runtime.
///
/// Inputs (`with:`, `NoopInputs`), all optional:
/// - `sleep_ms`: how long to work (honours cancellation);
/// - `fail_first`: fail attempts 1…N, succeed after;
/// - `exit_code`: end with this code (0 succeeds; others fail, retryable per the step's policy);
/// - `retryable`: `false` makes a failure final;
/// - `hang`: never finish on its own (until timeout, lease loss or drain);
/// - `output`: an object returned as the step's outputs (its `${{ }}` expressions resolved);
/// - `log`: a line written to the step's log (its `${{ }}` expressions resolved);
/// - `check_lease`: check the lease after sleeping, as a deploy does before acting.
public struct NoopExecutor: StepExecutor {
    public let kind = "noop"

    public init() {}

    public func execute(_ context: StepContext) async throws -> StepOutputs {
        let inputs = try context.decodeInputs(NoopInputs.self)
        if let line = inputs.log { context.log.write(line) }
        if inputs.hang == true {
            // Sleep in slices so cancellation ends it at once.
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        if let sleep = inputs.sleepMs, sleep > 0 {
            try await Task.sleep(for: .milliseconds(sleep))
        }
        if inputs.checkLease == true {
            try await context.checkLease()
        }
        let retryable = inputs.retryable ?? true
        if let failFirst = inputs.failFirst, context.job.attempt <= failFirst {
            throw StepFailure("noop: failing attempt \(context.job.attempt) of the first \(failFirst) as asked", exitCode: 1, retryable: retryable)
        }
        if let code = inputs.exitCode, code != 0 {
            throw StepFailure("noop: exiting with code \(code) as asked", exitCode: Int32(truncatingIfNeeded: code), retryable: retryable)
        }
        if let output = inputs.output { return output }
        return [:]
    }
}
