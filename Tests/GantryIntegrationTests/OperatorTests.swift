import Foundation
import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import GantryTestSupport
import Testing

/// What an operator does with the fleet, from the command line: sees the workers and the
/// queues with what is wrong with them, pauses and resumes a queue, drains a worker from afar.
/// Every action is recorded with the token's name; other roles are refused.
@Suite(.timeLimit(.minutes(3))) struct OperatorTests {
    static func json(_ text: String) throws -> [String: JSONValue] {
        guard let object = JSONValue.parseObject(text) else { throw Failure("not a JSON object: \(text.prefix(300))") }
        return object
    }

    static func queue(_ name: String, in list: [String: JSONValue]) -> [String: JSONValue]? {
        guard case .array(let queues)? = list["queues"] else { return nil }
        for case .object(let queue) in queues where queue["queue"] == .string(name) { return queue }
        return nil
    }

    @Test func anOperatorSeesTheFleetAndQueuesAndOthersAreRefused() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1", concurrency: 4)
        try await env.waitForHeartbeat(of: "w1")
        let operatorToken = try await api.token("ops", [.operator])
        let auditor = try await api.token("audit", [.auditor])
        let submitter = try await api.token("ci", [.submitter], env: ["staging"])

        let fleet = try await api.cli(["fleet", "--output", "json"], token: operatorToken)
        #expect(fleet.status == 0, "\(fleet)")
        guard case .array(let workers)? = try Self.json(fleet.out)["workers"], case .object(let w1)? = workers.first else {
            throw Failure("no workers in \(fleet.out)")
        }
        #expect(w1["name"] == .string("w1") && w1["state"] == .string("live") && w1["queues"] == .array([.string("noop")]))
        #expect(w1["concurrency"] == .number(4) && w1["version"] == .string(GantryVersion.current) && w1["drain_requested"] == .bool(false))
        let text = try await api.cli(["fleet"], token: auditor)
        #expect(text.status == 0 && text.out.contains("1 workers: 1 live, 0 draining, 0 stopped") && text.out.contains("w1"), "\(text)")

        // A queue nobody takes says so, with the command that fixes it.
        let build = try api.file("build.yml", "pipeline: b\nenvironment: staging\nsteps: [{ id: b, kind: build, with: { run: 'true' } }]\n")
        #expect(try await api.cli(["submit", "--pipeline", build, "--sha", "3f2a9c1"], token: submitter).status == 0)
        try await env.eventually("the build queue's problem") {
            let queues = try await api.cli(["queues"], token: operatorToken)
            return queues.out.contains("! no live worker takes build: 1 waiting; start one (gantry worker --kind build)")
        }

        let refused = try await api.cli(["queues"], token: submitter)
        #expect(refused.status == 2, "\(refused)")
        #expect(refused.err == "Error: token ci may not observe: it has roles submitter; observe needs operator or auditor or admin\n", "\(refused.err)")
        let pauseRefused = try await api.cli(["pause", "noop"], token: auditor)
        #expect(pauseRefused.status == 2 && pauseRefused.err.contains("may not operate"), "\(pauseRefused)")
        _ = (dispatcher, worker)
    }

    @Test func aPausedQueueIsLeftUnreadUntilResumedAndEachActionIsRecorded() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        try await env.waitForHeartbeat(of: "w1")
        let token = try await api.token("ops", [.operator])

        let paused = try await api.cli(["pause", "noop", "--reason", "database maintenance"], token: token)
        #expect(paused.status == 0 && paused.out.hasPrefix("queue noop paused"), "\(paused)")
        // Once the worker says so, no read of the queue is under way.
        try await env.eventually("the worker to leave the queue unread") {
            try await api.cli(["fleet", "--output", "json"], token: token).out.contains(#""paused":["noop"]"#)
        }
        let again = try await api.cli(["pause", "noop"], token: token)
        #expect(again.status == 2 && again.err.contains("queue noop is already paused (by ops at "), "\(again)")
        let typo = try await api.cli(["pause", "nop"], token: token)
        #expect(typo.status == 2 && typo.err.contains("queue 'nop' is not a step kind; did you mean 'noop'?"), "\(typo)")

        let ids = try await env.enqueue(count: 5)
        try await env.eventually("five steps waiting in the paused queue") {
            let queues = try Self.json(try await api.cli(["queues", "--output", "json"], token: token).out)
            guard let noop = Self.queue("noop", in: queues) else { return false }
            return noop["waiting"] == .number(5) && noop["paused"] == .bool(true) && noop["paused_by"] == .string("ops")
                && noop["pause_reason"] == .string("database maintenance")
                && noop["problems"] == .array([.string("paused: 5 waiting steps stay queued (gantry resume noop)")])
        }
        let resumedAtMs = WallClock.nowMs()
        let resumed = try await api.cli(["resume", "noop"], token: token)
        #expect(resumed.status == 0 && resumed.out.hasPrefix("queue noop resumed"), "\(resumed)")
        try await env.waitForRuns(ids)
        // Nothing ran while the queue was paused: every attempt began after the resume.
        for (_, attempts) in try await env.ledger(ids) {
            #expect(attempts.count == 1 && attempts.allSatisfy { $0.status == .succeeded && $0.startedAtUs / 1_000 >= resumedAtMs - 50 })
        }
        let notPaused = try await api.cli(["resume", "noop"], token: token)
        #expect(notPaused.status == 2 && notPaused.err.contains("queue noop is not paused"), "\(notPaused)")

        let actions = try await ActionLog().recent(namespace: env.namespace, limit: 20, on: env.db()).filter { $0.actor == "ops" }
        let summary = actions.reversed().map { "\($0.action) \($0.accepted ? "accepted" : "refused"): \($0.reason ?? "")" }
        #expect(summary.contains("pause accepted: queue noop: database maintenance"), "\(summary)")
        #expect(summary.contains("resume accepted: queue noop"), "\(summary)")
        #expect(summary.contains { $0.hasPrefix("pause refused: queue noop: queue noop is already paused") }, "\(summary)")
        #expect(summary.contains { $0.hasPrefix("resume refused: queue noop: queue noop is not paused") }, "\(summary)")
        _ = (dispatcher, worker)
    }

    @Test func aDrainedWorkerFinishesWhatItHoldsAndStopsAndAQuietOneIsNamed() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let busy = try env.worker("busy", concurrency: 2)
        let quiet = try env.worker("quiet", kind: "notify", lease: "1s")
        try await env.waitForHeartbeat(of: "busy")
        try await env.waitForHeartbeat(of: "quiet")
        let token = try await api.token("ops", [.operator])

        // A worker that stops sending heartbeats (here: stopped by a signal) is named.
        quiet.signal(SIGSTOP)
        try await env.eventually("the quiet worker shown as stopped") {
            let fleet = try await api.cli(["fleet"], token: token)
            return fleet.out.contains("quiet") && fleet.out.contains("! heartbeat stopped") && fleet.out.contains("0 draining, 1 stopped")
        }
        let quietDrain = try await api.cli(["drain", "quiet"], token: token)
        #expect(quietDrain.status == 2 && quietDrain.err.contains("no live worker quiet"), "\(quietDrain)")
        quiet.signal(SIGCONT)

        let ids = try await env.enqueue(count: 2, with: #"{"sleep_ms": 1500}"#)
        try await env.eventually("both steps running on busy") {
            let fleet = try Self.json(try await api.cli(["fleet", "--output", "json"], token: token).out)
            guard case .array(let workers)? = fleet["workers"] else { return false }
            return workers.contains { worker in
                guard case .object(let w) = worker, w["name"] == .string("busy"), case .array(let running)? = w["running"] else { return false }
                return running.count == 2
            }
        }
        let drained = try await api.cli(["drain", "busy", "--reason", "kernel upgrade"], token: token)
        #expect(drained.status == 0 && drained.out.hasPrefix("worker busy asked to drain"), "\(drained)")
        // It finishes what it holds within its drain grace and exits as on SIGTERM.
        #expect(await busy.waitForExit(timeout: .seconds(30)) == 0)
        let records = try await env.waitForRuns(ids)
        #expect(records.allSatisfy { $0.status == "succeeded" })
        for (_, attempts) in try await env.ledger(ids) { #expect(attempts.map(\.worker) == ["busy"]) }
        #expect(busy.log.contains("drain requested by an operator") && busy.log.contains("worker stopped"), "\(busy.log)")
        let fleet = try await api.cli(["fleet", "--output", "json"], token: token)
        #expect(!fleet.out.contains(#""name":"busy""#), "\(fleet.out)")
        let actions = try await ActionLog().recent(namespace: env.namespace, limit: 10, on: env.db())
        #expect(actions.contains { $0.actor == "ops" && $0.action == "drain" && $0.accepted && $0.reason == "worker busy: kernel upgrade" })
        _ = (dispatcher, quiet)
    }

    @Test func watchWritesEachRefreshWhileItRuns() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        try await env.waitForHeartbeat(of: "w1")
        let token = try await api.token("ops", [.operator])
        // In a log (not a terminal), each refresh is a block of its own.
        let outPath = env.logDirectory + "-watch.out"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: env.binary)
        watch.arguments = ["queues", "--watch", "--interval", "300ms"]
        watch.environment = ProcessInfo.processInfo.environment.merging(["GANTRY_URL": api.base, "GANTRY_TOKEN": token]) { $1 }
        watch.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        watch.standardError = FileHandle.nullDevice
        try watch.run()
        defer { if watch.isRunning { kill(watch.processIdentifier, SIGKILL) } }
        try await env.eventually("three refreshes") {
            ((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").components(separatedBy: "1 queues, 0 with problems").count > 3
        }
        #expect(watch.isRunning)
        kill(watch.processIdentifier, SIGINT)
        try await Command.exit(of: watch, what: "gantry queues --watch")
        _ = (dispatcher, worker)
    }
}
