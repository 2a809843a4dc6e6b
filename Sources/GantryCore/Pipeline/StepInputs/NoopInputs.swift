/// `noop`'s `with:` (schema: `StepInputSchemas.noop`; read by NoopExecutor). All optional;
/// a number or boolean may be an expression, read from the text it resolves to.
public struct NoopInputs: StepInputs {
    /// How long to work, honouring cancellation.
    public var sleepMs: Int?
    /// Fail attempts 1…N, succeed after.
    public var failFirst: Int?
    /// End with this code (0 succeeds).
    public var exitCode: Int?
    /// False makes a failure final (default true).
    public var retryable: Bool?
    /// Never finish on its own.
    public var hang: Bool?
    /// The step's outputs.
    public var output: [String: JSONValue]?
    /// A line for the step's log.
    public var log: String?
    /// Check the lease after sleeping, as a deploy does before acting.
    public var checkLease: Bool?

    public enum CodingKeys: String, InputKey {
        case sleepMs = "sleep_ms"
        case failFirst = "fail_first"
        case exitCode = "exit_code"
        case retryable, hang, output, log
        case checkLease = "check_lease"
    }
}
