/// A pipeline as written in its YAML file, validated: what CI submits and what
/// is stored with every run.
public struct PipelineDefinition: Sendable, Equatable {
    /// `on_busy:` — what a run does when its concurrency group is busy.
    public enum OnBusy: String, Sendable, Equatable, CaseIterable {
        case queue
        case reject
        case cancelPending = "cancel-pending"
    }

    public var name: String
    public var environment: String?
    /// The run's deadline (default 24h).
    public var timeout: Duration
    /// Text a submit must carry (`gates.confirm`).
    public var confirm: String?
    /// An environment the SHA must have succeeded in (`gates.promote_from`).
    public var promoteFrom: String?
    public var concurrencyGroup: String?
    public var onBusy: OnBusy
    /// The parameters a run takes (`params:`), in the file's order.
    public var params: [PipelineParam] = []
    public var steps: [PipelineStep]
    public var onFailure: [PipelineStep]
    public var finally: [PipelineStep]

    public init(
        name: String, environment: String? = nil, timeout: Duration = .seconds(86_400),
        confirm: String? = nil, promoteFrom: String? = nil, concurrencyGroup: String? = nil,
        onBusy: OnBusy = .queue, steps: [PipelineStep], onFailure: [PipelineStep] = [], finally: [PipelineStep] = []
    ) {
        self.name = name
        self.environment = environment
        self.timeout = timeout
        self.confirm = confirm
        self.promoteFrom = promoteFrom
        self.concurrencyGroup = concurrencyGroup
        self.onBusy = onBusy
        self.steps = steps
        self.onFailure = onFailure
        self.finally = finally
    }
}

/// One step of a pipeline.
public struct PipelineStep: Sendable, Equatable {
    public var id: String
    public var kind: String
    public var needs: [String]
    /// `when.paths`: globs; the step runs only if a changed file matches one.
    public var paths: [String]
    /// `if:`, a condition on run parameters.
    public var condition: String?
    /// The per-attempt timeout (the pipeline's default when not set).
    public var timeout: Duration
    public var retry: RetryPolicy
    /// The `with:` inputs, expressions still unresolved.
    public var inputs: [String: JSONValue]
    /// Where the step starts in its file.
    public var line: Int
    public var column: Int

    public init(
        id: String, kind: String, needs: [String] = [], paths: [String] = [], condition: String? = nil,
        timeout: Duration = .seconds(600), retry: RetryPolicy = RetryPolicy(), inputs: [String: JSONValue] = [:],
        line: Int = 0, column: Int = 0
    ) {
        self.id = id
        self.kind = kind
        self.needs = needs
        self.paths = paths
        self.condition = condition
        self.timeout = timeout
        self.retry = retry
        self.inputs = inputs
        self.line = line
        self.column = column
    }
}
