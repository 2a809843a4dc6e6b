import GantryCore

/// The Redis keys of one Gantry installation.
///
/// Every key carries the hash tag `{namespace}`, so all of them live in one
/// slot and the multi-key Lua scripts work on Redis Cluster too. Tests use a
/// namespace of their own and cannot disturb each other or a real fleet.
public struct QueueKeys: Sendable, Equatable {
    public let namespace: String

    public init(namespace: String = "gantry") {
        self.namespace = namespace
    }

    /// The stream a kind's workers read (consumer group `workers`).
    public func stream(_ kind: String) -> String { "{\(namespace)}:q:\(kind)" }
    /// Where deliveries that are not valid jobs go, with the reason.
    public func deadLetters(_ kind: String) -> String { "{\(namespace)}:dead:\(kind)" }
    /// Delayed retries: a sorted set scored by due time in ms.
    public var delayed: String { "{\(namespace)}:delayed" }
    /// Result events from workers to the dispatcher (consumer group `dispatchers`).
    public var events: String { "{\(namespace)}:events" }
    /// Attempts a user canceled: a sorted set of `run/step/attempt` scored by the time
    /// of the cancel (ms); workers poll it and stop those attempts.
    public var canceled: String { "{\(namespace)}:canceled" }
    /// The live log of one attempt: a capped stream of lines, kept for a week.
    public func log(_ key: AttemptKey) -> String { "{\(namespace)}:log:\(key.step.runID):\(key.step.stepID):\(key.attempt)" }
    /// Which runs changed, for the API's event streams: a capped stream of entries whose
    /// field `runs` lists run ids, written after each committed transition.
    public var changes: String { "{\(namespace)}:changes" }
    /// Queues an operator paused: a hash of queue (`build`, `build@production`) to who paused
    /// it, when and why (JSON); workers stop reading a paused queue.
    public var paused: String { "{\(namespace)}:paused" }
    /// Workers an operator asked to drain: a hash of worker name to who asked and when (JSON);
    /// the worker drains as on SIGTERM and takes its entry away when it stops.
    public var drains: String { "{\(namespace)}:drains" }
    /// Worker heartbeats: a hash from worker id to its JSON description.
    public var workers: String { "{\(namespace)}:workers" }
    /// The kind a stream key belongs to, or nil for a key of another namespace.
    public func kind(ofStream key: String) -> String? {
        let prefix = "{\(namespace)}:q:"
        guard key.hasPrefix(prefix) else { return nil }
        return String(key.dropFirst(prefix.count))
    }

    /// The consumer group of the kind streams.
    public static let workerGroup = "workers"
    /// The consumer group of the events stream.
    public static let dispatcherGroup = "dispatchers"
}
