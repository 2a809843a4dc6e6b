import Foundation
import GantryCore
import GantryDispatcher
import GantryPostgres
import GantryRedis
import Logging

/// What an integration test talks to: the real Redis and Postgres that
/// `make test` started, through a Redis namespace and a Postgres schema of its
/// own, so tests run side by side without seeing each other's work.
package struct TestEnvironment {
    package let redisURL: RedisURL
    package let redisURLText: String
    /// The application role's URL, pinned to this test's schema.
    package let databaseURLText: String
    /// The workers' role's URL (it records attempts and reads policies, nothing else).
    package let workerURLText: String
    package let adminURLText: String
    package let binary: String
    package let services: String?
    package let namespace: String
    package let keys: QueueKeys
    package let logDirectory: String

    /// Sets up a fresh namespace and schema; fails with what to do when `make test` did not set the environment.
    package static func make(_ name: String = #function) async throws -> TestEnvironment {
        let env = ProcessInfo.processInfo.environment
        guard let redis = env["GANTRY_TEST_REDIS_URL"], let database = env["GANTRY_TEST_DATABASE_URL"],
              let admin = env["GANTRY_TEST_ADMIN_DATABASE_URL"], let workerDatabase = env["GANTRY_TEST_WORKER_DATABASE_URL"],
              let binary = env["GANTRY_TEST_BINARY"]
        else {
            throw Failure("integration tests need the servers `make test` starts; run `make test` (or source .gantry/env and set GANTRY_TEST_BINARY)")
        }
        var random = SystemRandomNumberGenerator()
        let namespace = "t_" + String(random.next() & 0xFFFF_FFFF_FFFF, radix: 16)
        let schemaOption = "options=-csearch_path%3D\(namespace)"
        func pinned(_ url: String) -> String { url + (url.contains("?") ? "&" : "?") + schemaOption }
        let adminDB = PostgresConnection(url: try PostgresURL(parsing: admin), applicationName: "gantry-test setup")
        try await adminDB.run("CREATE SCHEMA \(namespace)")
        try await adminDB.run("GRANT USAGE ON SCHEMA \(namespace) TO gantry_writer, gantry_reader, gantry_runner")
        let pinnedAdmin = PostgresConnection(url: try PostgresURL(parsing: pinned(admin)), applicationName: "gantry-test migrate")
        _ = try await Migrator().migrate(pinnedAdmin, logger: Logger(label: "test"))
        let logs = URL(fileURLWithPath: binary).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".gantry/test-logs").path
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let safeName = name.filter { $0.isLetter || $0.isNumber }
        return TestEnvironment(
            redisURL: try RedisURL(parsing: redis), redisURLText: redis,
            databaseURLText: pinned(database), workerURLText: pinned(workerDatabase), adminURLText: pinned(admin),
            binary: binary, services: env["GANTRY_TEST_SERVICES"], namespace: namespace,
            keys: QueueKeys(namespace: namespace), logDirectory: logs + "/\(namespace)-\(safeName)"
        )
    }

    package func redis() -> RedisConnection { RedisConnection(url: redisURL) }
    package func db() throws -> PostgresConnection {
        PostgresConnection(url: try PostgresURL(parsing: databaseURLText), applicationName: "gantry-test")
    }
    package func workerDB() throws -> PostgresConnection {
        PostgresConnection(url: try PostgresURL(parsing: workerURLText), applicationName: "gantry-test worker role")
    }
    package func adminDB() throws -> PostgresConnection {
        PostgresConnection(url: try PostgresURL(parsing: adminURLText), applicationName: "gantry-test admin")
    }
    package var queue: WorkQueue { WorkQueue(keys: keys) }

    // MARK: Processes

    /// Starts `gantry <arguments>` against this test's namespace and schema.
    package func start(_ arguments: [String], name: String, environment: [String: String] = [:]) throws -> GantryProcess {
        try GantryProcess(
            binary: binary, arguments: arguments + ["--namespace", namespace],
            environment: ["GANTRY_REDIS_URL": redisURLText, "GANTRY_DATABASE_URL": databaseURLText, "GANTRY_LOG_LEVEL": "info"]
                .merging(environment) { _, new in new },
            log: "\(logDirectory)-\(name).log"
        )
    }

    /// Runs a `gantry` command that talks to Redis and Postgres (dlq, attempts, enqueue) with
    /// this test's namespace and the application's URL; returns its exit status and output.
    package func cli(_ arguments: [String]) async throws -> (status: Int32, out: String, err: String) {
        let environment = ProcessInfo.processInfo.environment.merging(
            ["GANTRY_REDIS_URL": redisURLText, "GANTRY_DATABASE_URL": databaseURLText, "GANTRY_LOG_LEVEL": "warning"]
        ) { $1 }
        let result = try await Command.run(
            binary, arguments + ["--namespace", namespace], environment: environment,
            stem: logDirectory + "-cli-\(UUID().uuidString.prefix(8))"
        )
        return (result.status, result.out, result.err)
    }

    package func dispatcher(_ extra: [String] = [], name: String = "dispatcher") throws -> GantryProcess {
        try start(["dispatcher", "--id", name, "--reap-interval", "200ms"] + extra, name: name)
    }

    package func worker(
        _ name: String, kind: String = "noop", concurrency: Int = 16, lease: String = "2s", extra: [String] = [],
        environment: [String: String] = [:]
    ) throws -> GantryProcess {
        try start(["worker", "--kind", kind, "--id", name, "--concurrency", String(concurrency), "--lease", lease] + extra,
                  name: name, environment: ["GANTRY_DATABASE_URL": workerURLText].merging(environment) { _, new in new })
    }

    /// Runs a services.sh action (stop-postgres, start-postgres, restart-redis).
    package func services(_ action: String) async throws {
        guard let services else { throw Failure("GANTRY_TEST_SERVICES is not set; run make test") }
        // posix_spawn + waitpid, not Foundation's Process: the Postgres daemon that
        // pg_ctl starts inherits Process's exit-watching descriptor and would make
        // the script look alive for as long as Postgres runs.
        var pid: pid_t = 0
        let words: [String] = ["/bin/bash", services, action]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        // The child must not inherit this thread's blocked signals: a Redis started with
        // SIGTERM blocked could never be stopped by PID.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        guard posix_spawn(&pid, "/bin/bash", nil, &attributes, argv, environ) == 0 else {
            throw Failure("cannot start services.sh \(action)")
        }
        var status: Int32 = 0
        let deadline = ContinuousClock.now + .seconds(90)
        while waitpid(pid, &status, WNOHANG) == 0 {
            guard ContinuousClock.now < deadline else {
                kill(pid, SIGKILL)
                throw Failure("services.sh \(action) did not finish in 90 s")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let code = (status >> 8) & 0xFF
        guard status & 0x7F == 0, code == 0 else { throw Failure("services.sh \(action) failed (status \(status))") }
    }

    // MARK: Runs

    package func enqueue(
        count: Int, with inputs: String = "{}", maxAttempts: Int = 3, backoff: Duration = .milliseconds(100),
        timeout: Duration = .seconds(30), onExitCodes: Set<Int32>? = nil
    ) async throws -> [String] {
        let request = Enqueuer.Request(
            kind: "noop", inputs: inputs,
            policy: RetryPolicy(maxAttempts: maxAttempts, initial: backoff, max: .seconds(2), jitter: .full, onExitCodes: onExitCodes),
            timeout: timeout, pipeline: "test", submitter: "test"
        )
        return try await Enqueuer(keys: keys).enqueue(request, count: count, redis: redis(), db: db())
    }

    /// Waits until every run has ended, or fails the test after `timeout`.
    @discardableResult
    package func waitForRuns(_ ids: [String], timeout: Duration = .seconds(60)) async throws -> [RunRecord] {
        let db = try db()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await RunStore().unfinishedCount(ids, on: db) == 0 {
                return try await RunStore().runs(ids, on: db)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let unfinished = try await RunStore().unfinishedCount(ids, on: db)
        throw Failure("\(unfinished) of \(ids.count) runs did not end within \(timeout); logs: \(logDirectory)-*.log")
    }

    package func attempts(_ runID: String) async throws -> [AttemptResult] {
        try await AttemptLedger().attempts(ofRun: runID, on: db())
    }

    /// Every ledger row of these runs, grouped by run.
    package func ledger(_ runIDs: [String]) async throws -> [String: [AttemptResult]] {
        let db = try db()
        var out: [String: [AttemptResult]] = [:]
        for id in runIDs { out[id] = try await AttemptLedger().attempts(ofRun: id, on: db) }
        return out
    }

    /// Makes a pending entry look idle for `idle` (Redis's `XCLAIM … IDLE`, to the same
    /// consumer, which keeps it its owner): what a lease test needs, without sleeping through it.
    package func setIdle(kind: String, id: String, consumer: String, _ idle: Duration) async throws {
        let claimed = try await redis().command([
            "XCLAIM", keys.stream(kind), QueueKeys.workerGroup, consumer, "0", id, "IDLE", String(idle.milliseconds), "JUSTID",
        ])
        guard claimed.array?.count == 1 else { throw Failure("cannot set the idle time of \(id): \(claimed)") }
    }

    /// Waits until the worker `name` has announced itself in the fleet hash (it is reading).
    package func waitForHeartbeat(of name: String) async throws {
        let redis = redis()
        try await eventually("worker \(name)'s heartbeat") {
            try await redis.command(["HEXISTS", keys.workers, name]).integer == 1
        }
    }

    /// Polls `condition` until it holds or fails after `timeout`.
    package func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure("timed out after \(timeout) waiting for: \(what)")
    }
}

/// A test failure with a message.
package struct Failure: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
