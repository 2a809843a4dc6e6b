import ArgumentParser
import Foundation
import GantryCore
import GantryDispatcher
import GantryPostgres
import GantryRedis
import GantryRuntime
import Histogram

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the whole path with no-op steps (enqueue, delivery, ledger commit, ack, dispatcher), or pipeline runs through the API (--pipeline).",
        discussion: """
            Starts its own dispatcher and worker processes (this binary) against the configured \
            Redis and Postgres, in a Redis namespace of its own (removed from Redis when it is done, unless \
            --namespace named it; the runs stay in Postgres). First it measures pickup latency \
            at low load (one step at a time), then drains --steps no-op steps and reports \
            throughput, worker memory, lost or failed steps, and the CPU a step costs in each part \
            (Postgres when its server is on this host, Redis, workers, dispatcher, the bench's \
            enqueuer), read from /proc and Redis INFO while the steps drain (shown once the steps used 2 s of CPU \
            in all; below that the 10 ms ticks of /proc dominate). With --pipeline the dispatcher also \
            serves the API and the bench submits 20-step DAG runs: one at a time (submit to succeeded), \
            then --runs at once while it measures GET /v1/runs/{id}. `make bench` starts the services \
            and records nothing by itself: copy the figures into docs/benchmarks.md with the command.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "No-op steps to drain.")
    var steps: Int = 100_000

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Option(help: "Concurrency of each worker.")
    var concurrency: Int = 64

    @Option(name: .customLong("latency-samples"), help: "Steps sent one at a time for pickup latency (0: not measured).")
    var latencySamples: Int = 300

    @Flag(help: "Measure pipeline runs through the API instead: a 20-step no-op DAG (fan-out 8, depth 5).")
    var pipeline = false

    @Option(help: "With --pipeline: runs submitted one at a time for submit-to-succeeded.")
    var sequential: Int = 100

    @Option(help: "With --pipeline: runs submitted at once.")
    var runs: Int = 1_000

    @Option(name: .customLong("read-rate"), help: "With --pipeline: GET /v1/runs/{id} requests per second while the runs execute (sent at a fixed rate by 4 readers).")
    var readRate: Int = 200

    @Option(name: .customLong("admin-database-url"), help: ArgumentHelp(
        "With --pipeline: the schema owner's URL, to create the bench's API token (the application's role may not).",
        discussion: "Default: $GANTRY_ADMIN_DATABASE_URL."
    ))
    var adminDatabaseURL: String?

    @Option var output: OutputFormat = .text

    func validate() throws {
        guard (1...10_000_000).contains(steps) else { throw ValidationError("--steps \(steps): use 1 to 10000000") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers \(workers): use 1 to 64") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency \(concurrency): use 1 to 4096") }
        guard (0...100_000).contains(latencySamples) else { throw ValidationError("--latency-samples \(latencySamples): use 0 to 100000") }
        guard (1...10_000).contains(readRate) else { throw ValidationError("--read-rate \(readRate): use 1 to 10000") }
    }

    func run() async throws {
        _ = connection.logger("gantry.bench")
        let redisURL = try connection.redis()
        let databaseURL = try connection.database()
        var random = SystemRandomNumberGenerator()
        let namespace = connection.namespace == "gantry" ? "bench-\(String(random.next() & 0xFFFFFF, radix: 16))" : connection.namespace
        let keys = QueueKeys(namespace: namespace)
        let redis = RedisConnection(url: redisURL)
        let db = PostgresConnection(url: databaseURL, applicationName: "gantry bench")
        // The latency samples are looked up by key (`id = ANY`), which the planner of a new
        // database, without statistics, priced as a scan of the whole table.
        try await db.run("SET enable_seqscan = off")
        let label = "bench:\(namespace)"
        let quiet = output == .json
        let say: @Sendable (String) -> Void = { line in
            if !quiet { FileHandle.standardError.write(Data("bench: \(line)\n".utf8)) }
        }

        // MARK: The fleet
        let port = pipeline ? Int.random(in: 20_000..<30_000) : nil
        let fleet = try Fleet(namespace: namespace, workers: workers, concurrency: concurrency, listenPort: port)
        let measured: Result<Void, any Error>
        do {
            try await measure(
                fleet: fleet, keys: keys, redis: redis, db: db, redisURL: redisURL, databaseURL: databaseURL,
                label: label, port: port, say: say
            )
            measured = .success(())
        } catch {
            measured = .failure(error)
        }
        await fleet.stop()
        // A namespace the bench made up is removed from Redis when it is done; its `changes`
        // stream alone held megabytes per run, and nothing would ever trim it again. The runs
        // stay in Postgres (the ledger is append-only), under the pipeline name `bench:<namespace>`.
        if namespace != connection.namespace {
            do {
                try await WorkQueue(keys: keys).removeNamespace(on: redis)
            } catch {
                say("could not remove the namespace \(namespace) from Redis: \(error)")
            }
        }
        try measured.get()
    }

    private func measure(
        fleet: Fleet, keys: QueueKeys, redis: RedisConnection, db: PostgresConnection, redisURL: RedisURL, databaseURL: PostgresURL,
        label: String, port: Int?, say: @escaping @Sendable (String) -> Void
    ) async throws {
        let namespace = keys.namespace
        var random = SystemRandomNumberGenerator()
        say("started a dispatcher and \(workers) workers (concurrency \(concurrency)) in namespace \(namespace)")
        let deadline = ContinuousClock.now + .seconds(30)
        while try await FleetRegistry(keys: keys).count(on: redis) < workers {
            guard ContinuousClock.now < deadline, fleet.allRunning else {
                throw Failure("the bench fleet did not start; is the schema migrated (gantry migrate) and are the URLs right?")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .seconds(1))
        let idleRSS = fleet.workerRSSMegabytes()

        if let port {
            guard let adminText = adminDatabaseURL ?? ProcessInfo.processInfo.environment["GANTRY_ADMIN_DATABASE_URL"],
                  let adminURL = try? PostgresURL(parsing: adminText) else {
                throw Failure("--pipeline creates an API token, which needs the schema owner's URL: pass --admin-database-url or set GANTRY_ADMIN_DATABASE_URL")
            }
            let token = APITokens.generate()
            _ = try await TokenStore().create(
                id: Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random), name: "bench", roles: [.admin],
                environments: [], hash: APITokens.hash(token), namespace: namespace,
                on: PostgresConnection(url: adminURL, applicationName: "gantry bench token")
            )
            let report = try await PipelineBench(
                base: "http://127.0.0.1:\(port)", token: token, sequentialRuns: sequential, concurrentRuns: runs, readRate: readRate,
                db: db, namespace: namespace, say: say
            ).run()
            print(output == .json ? report.json : report.text)
            return
        }

        let request = Enqueuer.Request(
            kind: "noop", inputs: "{}", policy: RetryPolicy(maxAttempts: 3, initial: .milliseconds(100)),
            timeout: .seconds(60), pipeline: label, submitter: "bench"
        )
        let enqueuer = Enqueuer(keys: keys)

        // MARK: Pickup latency at low load
        var pickup = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var samples: [Job] = []
        if latencySamples > 0 {
            say("pickup latency: \(latencySamples) steps, one at a time")
            for _ in 0..<latencySamples {
                let job = try await enqueuer.enqueueJobs(request, count: 1, redis: redis, db: db)[0]
                samples.append(job)
                while try await RunStore().unfinishedCount([job.runID], on: db) > 0 {
                    try await Task.sleep(for: .milliseconds(1))
                }
            }
            let recorded = try await AttemptLedger().current(samples.map { AttemptKey(step: $0.key, attempt: 1) }, on: db)
            for job in samples {
                if let attempt = recorded[AttemptKey(step: job.key, attempt: 1)] {
                    _ = pickup.record(UInt64(max(0, attempt.startedAtUs - job.enqueuedAtUs)))
                }
            }
        }

        // MARK: Throughput
        say("throughput: \(steps) steps")
        let changesFrom = try await RunChanges(keys: keys).latest(on: redis)
        let backendRows = try await db.run("SELECT pg_backend_pid() AS pid")
        let backend = backendRows.isEmpty ? nil : backendRows[0].int("pid").map { Int32($0) }
        let cpu = BenchCPU(dispatcherPIDs: fleet.dispatcherPIDs, workerPIDs: fleet.workerPIDs, backend: backend)
        if !cpu.seesPostgres { say("the Postgres server is not on this host: its CPU is left out of the CPU per step") }
        await cpu.begin(redis: redis)
        let start = ContinuousClock.now
        async let enqueueSeconds: Double = {
            var batch = Enqueuer(keys: keys)
            batch.batchSize = 5_000
            let began = ContinuousClock.now
            let enqueueRedis = RedisConnection(url: redisURL)
            let enqueueDB = PostgresConnection(url: databaseURL, applicationName: "gantry bench enqueue")
            var remaining = steps
            // A small first batch sets the fleet to work at once: a first batch of 5,000 kept
            // every worker idle for the ~0.2 s its COPY took.
            var size = 500
            while remaining > 0 {
                size = min(remaining, size)
                _ = try await batch.enqueueJobs(request, count: size, redis: enqueueRedis, db: enqueueDB)
                remaining -= size
                size = 5_000
            }
            return (ContinuousClock.now - began).secondsValue
        }()
        var rssSamples: [Double] = []
        var lastReport = ContinuousClock.now, lastSample = ContinuousClock.now
        var finished = 0
        var watcher = BenchWatcher(queue: WorkQueue(keys: keys), from: changesFrom, excluding: Set(samples.map(\.runID)))
        let changes = RedisConnection(url: redisURL)
        while finished < steps {
            finished = try await watcher.finished(steps: steps, changes: changes, db: db, label: label)
            if ContinuousClock.now - lastSample >= .milliseconds(250) {
                lastSample = .now
                cpu.sample()
            }
            if ContinuousClock.now - lastReport >= .seconds(5) {
                lastReport = .now
                rssSamples.append(fleet.workerRSSMegabytes())
                say("\(finished)/\(steps) done, \(Int(Double(finished) / (ContinuousClock.now - start).secondsValue)) steps/s, worker RSS \(String(format: "%.1f", rssSamples.last!)) MB")
            }
            guard fleet.allRunning else { throw Failure("a bench process exited early; run with --log-level debug") }
        }
        // The clock stops when the last run was seen finishing, not when the count confirming it
        // returns (a scan of every run: ~100 ms at 100,000).
        let elapsed = ((watcher.lastSeenAt ?? .now) - start).secondsValue
        await cpu.end(redis: redis)
        let enqueueTime = try await enqueueSeconds
        let finalRSS = fleet.workerRSSMegabytes()
        let counts = try await db.run(
            """
            SELECT (SELECT count(*) FROM runs WHERE pipeline = $1 AND status = 'failed') AS failed,
                   (SELECT count(*) FROM attempts a JOIN runs r ON r.id = a.run_id
                     WHERE r.pipeline = $1 AND a.status = 'lost') AS lost
            """,
            [label]
        )
        let report = BenchReport(
            steps: steps,
            enqueuePerSecond: Double(steps) / enqueueTime,
            endToEndPerSecond: Double(steps) / elapsed,
            pickupP50Ms: pickup.totalCount == 0 ? nil : Double(pickup.valueAtPercentile(50)) / 1_000,
            pickupP99Ms: pickup.totalCount == 0 ? nil : Double(pickup.valueAtPercentile(99)) / 1_000,
            workerRSSIdleMB: idleRSS,
            workerRSSMB: finalRSS,
            workerRSSMaxMB: (rssSamples + [finalRSS]).max() ?? finalRSS,
            lost: counts[0].int("lost") ?? 0,
            failed: counts[0].int("failed") ?? 0,
            cpu: cpu.parts,
            cores: ProcessInfo.processInfo.activeProcessorCount
        )
        print(output == .json ? report.json : report.text)
    }
}

/// The figures `gantry bench` prints.
private struct BenchReport {
    let steps: Int
    let enqueuePerSecond: Double
    let endToEndPerSecond: Double
    /// Nil when no step was sent one at a time (`--latency-samples 0`).
    let pickupP50Ms: Double?
    let pickupP99Ms: Double?
    let workerRSSIdleMB: Double
    let workerRSSMB: Double
    let workerRSSMaxMB: Double
    let lost: Int
    let failed: Int
    /// CPU seconds of each part while the steps drained.
    let cpu: [BenchCPU.Part]
    let cores: Int

    /// Microseconds of CPU per step, by part.
    private func perStep(_ part: BenchCPU.Part) -> Double { part.seconds * 1_000_000 / Double(steps) }
    private var totalPerStep: Double { cpu.reduce(0) { $0 + perStep($1) } }
    /// Processes are read in clock ticks (10 ms): under 2 s of CPU in all, a part's share is
    /// mostly rounding (one step showed 10,000 µs in three parts and 0 in Postgres).
    private var cpuMeasured: Bool { cpu.reduce(0) { $0 + $1.seconds } >= 2 }

    var json: String {
        func round(_ value: Double, _ places: Double = 1_000) -> JSONValue { .number((value * places).rounded() / places) }
        return JSONValue.object([
            "steps": .number(Double(steps)),
            "enqueue_per_s": round(enqueuePerSecond, 1),
            "end_to_end_per_s": round(endToEndPerSecond, 1),
            "pickup_p50_ms": pickupP50Ms.map { round($0) } ?? .null,
            "pickup_p99_ms": pickupP99Ms.map { round($0) } ?? .null,
            "worker_rss_mb": round(workerRSSMB, 10),
            "worker_rss_idle_mb": round(workerRSSIdleMB, 10),
            "worker_rss_max_mb": round(workerRSSMaxMB, 10),
            "lost": .number(Double(lost)),
            "failed": .number(Double(failed)),
            "cpu_us_per_step": cpuMeasured ? .object(Dictionary(
                uniqueKeysWithValues: cpu.map { ($0.name, round(perStep($0), 10)) } + [("total", round(totalPerStep, 10))]
            )) : .null,
        ]).jsonText
    }

    var text: String {
        """
        steps              \(steps)
        enqueue            \(Int(enqueuePerSecond)) steps/s
        end to end         \(Int(endToEndPerSecond)) steps/s
        pickup latency     \(pickupText)
        worker RSS         idle \(String(format: "%.1f", workerRSSIdleMB)) MB, end \(String(format: "%.1f", workerRSSMB)) MB, max \(String(format: "%.1f", workerRSSMaxMB)) MB (largest worker)
        lost               \(lost)
        failed             \(failed)
        CPU per step       \(cpuText)
        """
    }

    private var pickupText: String {
        guard let p50 = pickupP50Ms, let p99 = pickupP99Ms else { return "not measured (--latency-samples 0)" }
        return "p50 \(String(format: "%.3f", p50)) ms, p99 \(String(format: "%.3f", p99)) ms (idle, one at a time)"
    }

    private var cpuText: String {
        guard cpuMeasured else {
            return "not measured: under 2 s of CPU in all, and processes are read in 10 ms ticks (use --steps 20000 or more)"
        }
        let parts = cpu.map { "\($0.name) \(Int(perStep($0).rounded())) µs" }.joined(separator: ", ")
        let most = totalPerStep > 0 ? Int(Double(cores) * 1_000_000 / totalPerStep) : 0
        return "\(parts); total \(Int(totalPerStep.rounded())) µs (at that cost \(cores) cores drain at most \(most) steps/s)"
    }
}

/// The dispatcher and worker processes a benchmark starts and stops by PID.
private final class Fleet {
    private var processes: [Process] = []
    private(set) var dispatcherPIDs: [Int32] = []
    private(set) var workerPIDs: [Int32] = []

    init(namespace: String, workers: Int, concurrency: Int, listenPort: Int?) throws {
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let common = ["--namespace", namespace, "--log-level", "warning"]
        // One admin token sends every submit and read of the measurement: no per-token limit.
        let listen = listenPort.map { ["--listen", "127.0.0.1:\($0)", "--api-connections", "4", "--api-read-connections", "4", "--api-rate", "0"] } ?? []
        // The reconciler is held off: the database may hold other installations' unfinished steps.
        processes.append(try Self.launch(binary, ["dispatcher", "--id", "bench-dispatcher", "--reconcile-after", "10m"] + listen + common))
        dispatcherPIDs = [processes[0].processIdentifier]
        for index in 1...workers {
            let process = try Self.launch(binary, ["worker", "--kind", "noop", "--id", "bench-worker-\(index)", "--concurrency", String(concurrency)] + common)
            processes.append(process)
            workerPIDs.append(process.processIdentifier)
        }
    }

    private static func launch(_ binary: String, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        try process.run()
        return process
    }

    var allRunning: Bool { processes.allSatisfy(\.isRunning) }

    /// The resident memory of the largest worker, from /proc.
    func workerRSSMegabytes() -> Double {
        workerPIDs.map { pid -> Double in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                  let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
            else { return 0 }
            return kb / 1_024
        }.max() ?? 0
    }

    func stop() async {
        for process in processes where process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(15)
        while processes.contains(where: \.isRunning) && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Counts the bench's runs that finished, from the dispatcher's `changes` stream (each
/// transition that committed lists its runs there, and a bench run changes once, when its
/// only step ends), and confirms the end with one count in Postgres. Counting the running
/// runs in Postgres every half second instead cost the server ~16 ms per count at 100,000
/// steps (3.3 µs of database time per step, pg_stat_statements), took an index on every run
/// that nothing else used, and a look-up by key of each run cost more still (6 µs).
struct BenchWatcher {
    let queue: WorkQueue
    /// Where to read the stream from: its last entry before the throughput runs began.
    var from: String
    /// Runs of the latency samples, whose changes may still come.
    let excluding: Set<String>
    private var seen: Set<String> = []
    /// When the last run was seen changing, once the count in Postgres confirmed that every run
    /// had finished by then; nil when they had not (a retried step), and the end is the count's.
    private(set) var lastSeenAt: ContinuousClock.Instant?
    private var checked = false

    init(queue: WorkQueue, from: String, excluding: Set<String>) {
        self.queue = queue
        self.from = from
        self.excluding = excluding
    }

    /// Waits up to half a second for changes, then returns how many of the runs finished: the
    /// runs seen changing until that reaches `steps`, then the exact count from Postgres (a
    /// run whose step was retried changes more than once).
    mutating func finished(steps: Int, changes: RedisConnection, db: PostgresConnection, label: String) async throws -> Int {
        if seen.count < steps {
            let read = try await RunChanges(keys: queue.keys).read(after: from, block: .milliseconds(500), on: changes)
            from = read.lastID
            for id in read.runIDs where !excluding.contains(id) { seen.insert(id) }
            if seen.count < steps { return seen.count }
        } else {
            try await Task.sleep(for: .milliseconds(50))
        }
        let seenAt = ContinuousClock.now
        let rows = try await db.run("SELECT count(*) AS n FROM runs WHERE pipeline = $1 AND finished_at IS NULL", [label])
        let unfinished = rows.isEmpty ? 0 : rows[0].int("n") ?? 0
        if unfinished == 0 && !checked { lastSeenAt = seenAt }
        checked = true
        return steps - unfinished
    }
}
