import Foundation
import GantryCore
import GantryHTTP
import GantryPostgres
import GantryTestSupport
import Synchronization
import Testing

/// The deploy kind's local target, for real: instances are processes of
/// scripts/sample-service.py behind Debian's nginx, started by a worker process.
/// Everything started is stopped by the PIDs the target recorded.
@Suite(.serialized) struct DeployTests {
    static let sampleService = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/sample-service.py").standardizedFileURL.path

    /// Stops the instances and the nginx a test's state directory records.
    static func cleanUp(stateDirectory: String) {
        let fm = FileManager.default
        for service in (try? fm.contentsOfDirectory(atPath: stateDirectory + "/services")) ?? [] {
            guard let data = fm.contents(atPath: "\(stateDirectory)/services/\(service)/state.json"),
                  let state = try? JSONDecoder().decode(LocalDeployment.self, from: data) else { continue }
            for release in [state.active, state.previous, state.pending].compactMap({ $0 }) {
                for instance in release.instances { kill(-instance.pid, SIGKILL) }
            }
        }
        if let text = try? String(contentsOfFile: stateDirectory + "/nginx/nginx.pid", encoding: .utf8),
           let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(pid, SIGQUIT)
        }
    }

    /// What every deploy test starts from: a dispatcher serving the API, a submitter token,
    /// a state directory of its own (cleaned up by the caller) and a free address for nginx.
    struct Setup {
        let env: TestEnvironment
        let api: APIHarness
        let dispatcher: GantryProcess
        let token: String
        let stateDirectory: String
        let listen: String

        static func make(_ name: String = #function) async throws -> Setup {
            let env = try await TestEnvironment.make(name)
            let (api, dispatcher) = try await APIHarness.start(env)
            return Setup(
                env: env, api: api, dispatcher: dispatcher, token: try await api.token("ci", [.submitter], env: ["staging"]),
                stateDirectory: env.logDirectory + "-local", listen: "127.0.0.1:\(try APIHarness.freePort())"
            )
        }
    }

    /// GET / through nginx on a new connection (a kept-alive one may still sit on an old nginx worker).
    static func get(_ listen: String) async throws -> String {
        try await HTTPClient(name: "probe").send(HTTPRequest(url: "http://\(listen)/", headers: [("Connection", "close")])).text
    }

    static func state(_ stateDirectory: String, _ service: String) throws -> LocalDeployment {
        let data = try #require(FileManager.default.contents(atPath: "\(stateDirectory)/services/\(service)/state.json"))
        return try JSONDecoder().decode(LocalDeployment.self, from: data)
    }

    func pipeline(_ service: String, listen: String, version: String, flags: String = "", strategy: String = "blue-green",
                  timeout: String = "20s", extra: String = "") -> String {
        """
        pipeline: deploy-\(service)
        environment: staging
        steps:
          - id: deploy
            kind: deploy
            retry: { max_attempts: 2, backoff: { initial: 200ms } }
            with:
              target: local
              service: \(service)
              version: "\(version)"
              run: "exec python3 \(Self.sampleService) --version \(version) \(flags)"
              instances: 2
              listen: "\(listen)"
              strategy: \(strategy)
              health: { path: /healthz, expect_status: 200, timeout: \(timeout) }
        \(extra)
        """
    }

    /// Sends requests through nginx until stopped; counts what came back.
    final class Hammer: Sendable {
        let ok = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let versions = Mutex<[String]>([])
        let stop = Atomic<Bool>(false)

        func run(_ url: String) async {
            let client = HTTPClient(name: "hammer")
            // Cancelled too (a failed wait leaves the test before `stop`), or its scope would never end.
            while !stop.load(ordering: .relaxed) && !Task.isCancelled {
                do {
                    let response = try await client.send(HTTPRequest(url: url, timeout: .seconds(5)))
                    if response.status == 200 {
                        ok.add(1, ordering: .relaxed)
                        let version = response.text.replacingOccurrences(of: "hello from ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
                        versions.withLock { if $0.last != version { $0.append(version) } }
                    } else {
                        failed.add(1, ordering: .relaxed)
                    }
                } catch {
                    failed.add(1, ordering: .relaxed)
                }
            }
        }
    }

    @Test func blueGreenMovesTrafficWithoutAFailedRequestKeepsItOnUnhealthyGreenAndRollsBack() async throws {
        let setup = try await Setup.make()
        let (env, api, dispatcher, token, stateDirectory, listen) = (setup.env, setup.api, setup.dispatcher, setup.token, setup.stateDirectory, setup.listen)
        defer { Self.cleanUp(stateDirectory: stateDirectory) }
        let worker = try env.worker("deployer", kind: "deploy,smoke-test", concurrency: 4, lease: "10s", extra: ["--state-dir", stateDirectory])

        let first = try await api.submit(pipeline("api", listen: listen, version: "v1"), token: token).json.id
        let v1 = try await api.wait(first, token: token, timeout: .seconds(40))
        #expect(v1.status == "succeeded", "\(v1.steps.first?.lastError ?? "")")
        #expect(try await Self.get(listen) == "hello from v1\n")

        // v2 while two clients hammer nginx: every request answered, and traffic moves.
        let hammer = Hammer()
        async let a: Void = hammer.run("http://\(listen)/")
        async let b: Void = hammer.run("http://\(listen)/")
        try await env.eventually("the clients to be answered by v1") {
            hammer.ok.load(ordering: .relaxed) >= 5
        }
        let second = try await api.submit(pipeline("api", listen: listen, version: "v2"), token: token).json.id
        let v2 = try await api.wait(second, token: token, timeout: .seconds(40))
        // Past the switch: answers from v2, and more of them, over new connections and any an old
        // nginx worker still holds.
        let answeredAtSwitch = hammer.ok.load(ordering: .relaxed)
        try await env.eventually("the clients to be answered by v2") {
            hammer.versions.withLock { $0.last } == "v2" && hammer.ok.load(ordering: .relaxed) >= answeredAtSwitch + 10
        }
        hammer.stop.store(true, ordering: .relaxed)
        _ = await (a, b)
        #expect(v2.status == "succeeded", "\(v2.steps.first?.lastError ?? "")")
        let outputs = try #require(v2.steps.first?.attempts.last?.outputs)
        #expect(outputs["version"] == .string("v2") && outputs["previous_version"] == .string("v1") && outputs["strategy"] == .string("blue-green"))
        let served = hammer.ok.load(ordering: .relaxed)
        #expect(hammer.failed.load(ordering: .relaxed) == 0, "\(hammer.failed.load(ordering: .relaxed)) of \(served) requests failed during the switch")
        #expect(served >= 5, "the clients must have been sending across the switch")
        // Connections an old nginx worker still holds finish on v1; new ones get v2.
        let seen = hammer.versions.withLock { $0 }
        #expect(seen.first == "v1" && seen.last == "v2", "\(seen)")
        var state = try Self.state(stateDirectory, "api")
        #expect(state.active?.version == "v2" && state.previous?.version == "v1" && state.pending == nil)
        #expect(state.previous?.instances.allSatisfy { BuildTests.isRunning($0.pid) } == true, "blue is kept for the rollback window")

        // An unhealthy green: the step fails, traffic never moves, green is torn down.
        let third = try await api.submit(pipeline("api", listen: listen, version: "v3", flags: "--unhealthy", timeout: "2s"), token: token).json.id
        let v3 = try await api.wait(third, token: token, timeout: .seconds(40))
        #expect(v3.status == "failed")
        #expect(v3.steps.first?.attempts.count == 1, "an unhealthy release is not retried")
        #expect(v3.steps.first?.attempts.first?.error?.contains("did not pass their health check") == true, "\(v3.steps.first?.attempts.first?.error ?? "")")
        #expect(try await Self.get(listen) == "hello from v2\n")
        state = try Self.state(stateDirectory, "api")
        #expect(state.active?.version == "v2" && state.pending == nil)

        // A release whose smoke test fails afterwards: on_failure rolls back to v2 at once.
        let smoked = pipeline("api", listen: listen, version: "v4", extra: """
              - id: smoke
                kind: smoke-test
                needs: [deploy]
                with: { checks: [ { name: greeting, url: "http://\(listen)/", expect_body_contains: "hello from v2" } ] }
            on_failure:
              - id: rollback
                kind: deploy
                with: { target: local, action: rollback, service: api, run: "exec python3 \(Self.sampleService) --version v2" }
            """)
        let fourth = try await api.submit(smoked, token: token).json.id
        let v4 = try await api.wait(fourth, token: token, timeout: .seconds(40))
        let steps = Dictionary(uniqueKeysWithValues: v4.steps.map { ($0.id, $0) })
        #expect(v4.status == "failed" && steps["smoke"]?.status == "failed")
        #expect(steps["rollback"]?.status == "succeeded", "\(steps["rollback"]?.lastError ?? "")")
        #expect(steps["rollback"]?.attempts.last?.outputs["result"] == .string("rolled_back"))
        #expect(steps["rollback"]?.attempts.last?.outputs["version"] == .string("v2"))
        #expect(try await Self.get(listen) == "hello from v2\n")

        // What auditors and DORA figures read: every deploy attempt, from the ledger.
        let rows = try await env.db().run("""
            SELECT service, action, strategy, version, coalesce(previous_version, '') AS previous, status, coalesce(result, '') AS result
            FROM deployments ORDER BY finished_at, step_id
            """, [])
        let history = (0..<rows.count).map { i in
            ["service", "action", "strategy", "version", "previous", "status", "result"].map { rows[i].string($0) ?? "" }.joined(separator: " ")
        }
        #expect(history == [
            "api deploy blue-green v1  succeeded deployed",
            "api deploy blue-green v2 v1 succeeded deployed",
            "api deploy blue-green v3  failed ",
            "api deploy blue-green v4 v2 succeeded deployed",
            "api rollback blue-green v2 v4 succeeded rolled_back",
        ], "\(history)")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    @Test func aWorkerKilledMidDeployLeavesAStateTheNextAttemptFinishes() async throws {
        let setup = try await Setup.make()
        let (env, api, dispatcher, token, stateDirectory, listen) = (setup.env, setup.api, setup.dispatcher, setup.token, setup.stateDirectory, setup.listen)
        defer { Self.cleanUp(stateDirectory: stateDirectory) }
        let first = try env.worker("deployer-1", kind: "deploy", concurrency: 2, lease: "2s", extra: ["--state-dir", stateDirectory])
        let v1 = try await api.submit(pipeline("web", listen: listen, version: "v1"), token: token).json.id
        #expect(try await api.wait(v1, token: token, timeout: .seconds(40)).status == "succeeded")

        // v2 starts slowly; the worker dies while green is starting, before any switch.
        let slow = try await api.submit(pipeline("web", listen: listen, version: "v2", flags: "--start-delay 3"), token: token).json.id
        try await env.eventually("green to be starting", timeout: .seconds(20)) {
            (try? Self.state(stateDirectory, "web"))?.pending?.instances.count == 2
        }
        let orphans = try Self.state(stateDirectory, "web").pending!.instances
        first.signal(SIGKILL)
        _ = await first.waitForExit()
        #expect(try await Self.get(listen) == "hello from v1\n", "v1 still serves")

        let second = try env.worker("deployer-2", kind: "deploy", concurrency: 2, lease: "2s", extra: ["--state-dir", stateDirectory])
        let run = try await api.wait(slow, token: token, timeout: .seconds(60))
        #expect(run.status == "succeeded", "\(run.steps.first?.lastError ?? "")")
        #expect(run.steps.first?.attempts.map(\.status) == ["lost", "succeeded"])
        let state = try Self.state(stateDirectory, "web")
        #expect(state.active?.version == "v2" && state.previous?.version == "v1" && state.pending == nil)
        let activePorts = Set(state.active?.ports ?? [])
        #expect(activePorts.isDisjoint(with: orphans.map(\.port)), "the half-started green was replaced, not adopted")
        try await env.eventually("the half-started green to be stopped", timeout: .seconds(10)) {
            orphans.allSatisfy { !BuildTests.isRunning($0.pid) }
        }
        #expect(try await Self.get(listen) == "hello from v2\n")
        _ = await second.stop()
        _ = await dispatcher.stop()
    }

    @Test func aDeployWhoseLeaseWasLostChangesNothingMore() async throws {
        let setup = try await Setup.make()
        let (env, api, dispatcher, token, stateDirectory, listen) = (setup.env, setup.api, setup.dispatcher, setup.token, setup.stateDirectory, setup.listen)
        defer { Self.cleanUp(stateDirectory: stateDirectory) }
        // Concurrency 1: while it holds the step it reads nothing, so the retry cannot land on it.
        let frozen = try env.worker("frozen", kind: "deploy", concurrency: 1, lease: "2s", extra: ["--state-dir", stateDirectory])
        let v1 = try await api.submit(pipeline("shop", listen: listen, version: "v1"), token: token).json.id
        #expect(try await api.wait(v1, token: token, timeout: .seconds(40)).status == "succeeded")

        let slow = try await api.submit(pipeline("shop", listen: listen, version: "v2", flags: "--start-delay 4"), token: token).json.id
        try await env.eventually("green to be starting", timeout: .seconds(20)) {
            (try? Self.state(stateDirectory, "shop"))?.pending?.instances.count == 2
        }
        // Frozen past its lease: the step is reclaimed and another worker deploys it.
        frozen.signal(SIGSTOP)
        let healthy = try env.worker("healthy", kind: "deploy", concurrency: 1, lease: "2s", extra: ["--state-dir", stateDirectory])
        try await env.eventually("the deploy to succeed on the healthy worker", timeout: .seconds(60)) {
            try await api.run(slow, token: token).steps.first?.attempts.contains { $0.status == "succeeded" && $0.worker == "healthy" } == true
        }
        let settled = try Self.state(stateDirectory, "shop")
        frozen.signal(SIGCONT)
        // Its attempt's outcome is recorded only after its deploy has returned, and once the worker
        // has exited nothing of it runs: whatever it was about to do, it did not, and the state and
        // the traffic are the healthy worker's.
        try await env.eventually("the frozen worker's attempt recorded stale", timeout: .seconds(30)) {
            try await env.attempts(slow).contains { $0.status == .stale && $0.worker == "frozen" }
        }
        #expect(await frozen.stop() == 0)
        #expect(try Self.state(stateDirectory, "shop") == settled)
        #expect(settled.active?.version == "v2" && settled.pending == nil)
        #expect(try await Self.get(listen) == "hello from v2\n")
        let stale = try #require(try await env.attempts(slow).first { $0.status == .stale })
        #expect(stale.logTail?.contains("traffic on") != true, "\(stale.logTail ?? "")")
        _ = await healthy.stop()
        _ = await dispatcher.stop()
    }

    @Test func aRollingDeployStopsAtAnUnhealthyInstanceAndCanGoBack() async throws {
        let setup = try await Setup.make()
        let (env, api, dispatcher, token, stateDirectory, listen) = (setup.env, setup.api, setup.dispatcher, setup.token, setup.stateDirectory, setup.listen)
        defer { Self.cleanUp(stateDirectory: stateDirectory) }
        let worker = try env.worker("roller", kind: "deploy", concurrency: 2, lease: "10s", extra: ["--state-dir", stateDirectory])
        for version in ["v1", "v2"] {
            let id = try await api.submit(pipeline("cart", listen: listen, version: version, strategy: "rolling"), token: token).json.id
            let run = try await api.wait(id, token: token, timeout: .seconds(40))
            #expect(run.status == "succeeded", "\(run.steps.first?.lastError ?? "")")
        }
        #expect(try await Self.get(listen) == "hello from v2\n")
        #expect(try Self.state(stateDirectory, "cart").previous == nil, "rolling keeps no old release running")

        // v3 never gets healthy: the rollout stops at its first instance, before anything was replaced.
        let broken = pipeline("cart", listen: listen, version: "v3", flags: "--unhealthy", strategy: "rolling", timeout: "2s")
            .replacingOccurrences(of: "      strategy: rolling", with: "      strategy: rolling\n      rollback_on_failure: true")
        let id = try await api.submit(broken, token: token).json.id
        let run = try await api.wait(id, token: token, timeout: .seconds(60))
        #expect(run.status == "failed")
        #expect(run.steps.first?.attempts.first?.error?.contains("instance 1 of 2 did not pass its health check; nothing was replaced, v2 still serves") == true,
                "\(run.steps.first?.attempts.first?.error ?? "")")
        #expect(try await Self.get(listen) == "hello from v2\n")
        var state = try Self.state(stateDirectory, "cart")
        #expect(state.active?.version == "v2" && state.pending == nil)

        // v4's first instance is healthy and takes traffic, its second is not: the rollout goes back to a
        // full set of v2, started with v2's own command, and the v4 instance is stopped.
        let counter = env.logDirectory + "-starts"
        let halfway = pipeline("cart", listen: listen, version: "v4", flags: "--start-counter \(counter) --unhealthy-from 2",
                               strategy: "rolling", timeout: "2s")
            .replacingOccurrences(of: "      strategy: rolling", with: "      strategy: rolling\n      rollback_on_failure: true")
        let fourth = try await api.submit(halfway, token: token).json.id
        let failed = try await api.wait(fourth, token: token, timeout: .seconds(60))
        #expect(failed.steps.first?.attempts.first?.error?.hasSuffix("instance 2 of 2 did not pass its health check; rolled back: v2 serves again") == true,
                "\(failed.steps.first?.attempts.first?.error ?? "")")
        state = try Self.state(stateDirectory, "cart")
        #expect(state.active?.version == "v2" && state.active?.instances.count == 2 && state.pending == nil)
        #expect(try await Self.get(listen) == "hello from v2\n")
        #expect(try await Self.get(listen) == "hello from v2\n", "both instances are v2")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }
}
