import GantryCore

/// The workers seen within their lease, from their heartbeats (`WorkQueue.fleet`): what the
/// API shows of a step that runs, or of one that waits for a kind no live worker takes.
public struct FleetSnapshot: Sendable {
    public struct Member: Sendable, Equatable {
        public let name: String
        /// Queue kinds: `build`, or `build@production` for a pool's.
        public let kinds: [String]
        public let draining: Bool
    }

    public struct Runner: Sendable, Equatable {
        public let worker: String
        public let sinceMs: Int64
    }

    public let workers: [Member]
    /// Attempts being run, by their name in the cancel list (`run/step/attempt`).
    let running: [String: Runner]

    public init(workers: [Member], running: [String: Runner]) {
        self.workers = workers
        self.running = running
    }

    /// Nothing known (Redis could not be read): no step is shown as running, none as unserved.
    public static let unknown = FleetSnapshot(workers: [], running: [:], known: false)
    /// False for `unknown`.
    public var isKnown: Bool { known }
    private var known = true

    private init(workers: [Member], running: [String: Runner], known: Bool) {
        self.workers = workers
        self.running = running
        self.known = known
    }

    /// Who runs this attempt now, and since when.
    public func runner(of attempt: AttemptKey) -> Runner? {
        running[CancelList.member(attempt)]
    }

    /// Whether a live worker that is not draining takes this queue kind.
    public func serves(_ queueKind: String) -> Bool {
        !known || workers.contains { !$0.draining && $0.kinds.contains(queueKind) }
    }
}
