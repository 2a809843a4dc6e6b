/// The executors a worker can run, by kind name.
public struct ExecutorRegistry: Sendable {
    private var executors: [String: any StepExecutor] = [:]

    public init(_ executors: [any StepExecutor] = []) {
        for executor in executors { register(executor) }
    }

    /// Every kind built into Gantry.
    public static var builtIn: ExecutorRegistry {
        ExecutorRegistry([NoopExecutor(), BuildExecutor(), ScanExecutor(), BackupExecutor(), SmokeTestExecutor(), MetricsWatchExecutor(), NotifyExecutor()])
    }

    public mutating func register(_ executor: any StepExecutor) {
        executors[executor.kind] = executor
    }

    public func executor(for kind: String) -> (any StepExecutor)? {
        executors[kind]
    }

    public var kinds: [String] { executors.keys.sorted() }
}
