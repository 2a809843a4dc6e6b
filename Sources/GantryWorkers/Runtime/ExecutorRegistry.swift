/// The executors a worker can run, by kind name.
public struct ExecutorRegistry: Sendable {
    private var executors: [String: any StepExecutor] = [:]

    public init(_ executors: [any StepExecutor] = []) {
        for executor in executors { register(executor) }
    }

    /// Every kind built into Gantry.
    /// - Parameter localStateDirectory: where the deploy kind's local target keeps its state.
    public static func builtIn(localStateDirectory: String = ".gantry/local") -> ExecutorRegistry {
        ExecutorRegistry([
            NoopExecutor(), BuildExecutor(), ScanExecutor(), BackupExecutor(), DeployExecutor(stateDirectory: localStateDirectory),
            SmokeTestExecutor(), MetricsWatchExecutor(), NotifyExecutor(),
        ])
    }

    public mutating func register(_ executor: any StepExecutor) {
        executors[executor.kind] = executor
    }

    public func executor(for kind: String) -> (any StepExecutor)? {
        executors[kind]
    }

    public var kinds: [String] { executors.keys.sorted() }
}
