import GantryCore

/// What a worker tells the fleet about itself, every third of its lease and whenever it
/// takes new attempts: the value of its field in the fleet hash (`QueueKeys.workers`), as
/// JSON. `FleetRegistry` writes and reads it; nothing else touches the hash.
///
/// Every field is optional on the wire: a worker of an earlier release sends fewer (no
/// `jobs`, no `running`), and a field missing reads as its default here.
public struct WorkerHeartbeat: Codable, Sendable, Equatable {
    /// Queue kinds it takes: `build`, or `build@production` for a pool's.
    public var kinds: [String] = []
    public var concurrency = 0
    /// Its lease: a heartbeat older than this is a dead worker's.
    public var leaseMs: Int64 = 0
    /// The newest job format it reads (writers use it once every live worker of a kind does).
    public var jobs = JobFormat.fields.rawValue
    public var pid: Int32 = 0
    public var host = ""
    /// The release it runs.
    public var version = ""
    public var startedMs: Int64 = 0
    /// When it wrote this heartbeat.
    public var seenMs: Int64 = 0
    public var inFlight = 0
    public var draining = false
    /// What it runs now, the oldest first (at most `maxRunning`).
    public var running: [RunningAttempt] = []
    /// Queues an operator paused that it has stopped reading (no read of them is under way).
    public var paused: [String] = []

    /// More attempts than this are not listed (the hash stays small whatever the concurrency).
    public static let maxRunning = 1_000

    public init(
        kinds: [String], concurrency: Int, leaseMs: Int64, jobs: Int, pid: Int32, host: String, version: String,
        startedMs: Int64, seenMs: Int64, inFlight: Int, draining: Bool, running: [RunningAttempt], paused: [String] = []
    ) {
        self.kinds = kinds
        self.concurrency = concurrency
        self.leaseMs = leaseMs
        self.jobs = jobs
        self.pid = pid
        self.host = host
        self.version = version
        self.startedMs = startedMs
        self.seenMs = seenMs
        self.inFlight = inFlight
        self.draining = draining
        self.running = Array(running.sorted { $0.sinceMs < $1.sinceMs }.prefix(Self.maxRunning))
        self.paused = paused
    }

    /// Whether the worker was seen within its lease at `nowMs`.
    public func isLive(nowMs: Int64) -> Bool {
        seenMs > 0 && nowMs - seenMs <= leaseMs
    }

    enum CodingKeys: String, CodingKey {
        case kinds, concurrency, jobs, pid, host, version, draining, running, paused
        case leaseMs = "lease_ms"
        case startedMs = "started_ms"
        case seenMs = "seen_ms"
        case inFlight = "in_flight"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kinds = try container.decodeIfPresent([String].self, forKey: .kinds) ?? []
        concurrency = try container.decodeIfPresent(Int.self, forKey: .concurrency) ?? 0
        leaseMs = try container.decodeIfPresent(Int64.self, forKey: .leaseMs) ?? 0
        jobs = try container.decodeIfPresent(Int.self, forKey: .jobs) ?? JobFormat.fields.rawValue
        pid = try container.decodeIfPresent(Int32.self, forKey: .pid) ?? 0
        host = try container.decodeIfPresent(String.self, forKey: .host) ?? ""
        version = try container.decodeIfPresent(String.self, forKey: .version) ?? ""
        startedMs = try container.decodeIfPresent(Int64.self, forKey: .startedMs) ?? 0
        seenMs = try container.decodeIfPresent(Int64.self, forKey: .seenMs) ?? 0
        inFlight = try container.decodeIfPresent(Int.self, forKey: .inFlight) ?? 0
        draining = try container.decodeIfPresent(Bool.self, forKey: .draining) ?? false
        running = try container.decodeIfPresent([RunningAttempt].self, forKey: .running) ?? []
        paused = try container.decodeIfPresent([String].self, forKey: .paused) ?? []
    }
}

/// An attempt a worker runs, by its name in the cancel list (`run/step/attempt`), and since
/// when (ms since the epoch). On the wire a pair, `["run/step/1", 1733380000000]`.
public struct RunningAttempt: Codable, Sendable, Equatable {
    public var attempt: String
    public var sinceMs: Int64

    public init(attempt: String, sinceMs: Int64) {
        self.attempt = attempt
        self.sinceMs = sinceMs
    }

    public init(from decoder: any Decoder) throws {
        var pair = try decoder.unkeyedContainer()
        attempt = try pair.decode(String.self)
        sinceMs = try pair.decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var pair = encoder.unkeyedContainer()
        try pair.encode(attempt)
        try pair.encode(sinceMs)
    }
}
