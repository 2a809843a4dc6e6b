import Foundation
import GantryCore
import GantryRedis
import GantryTestSupport
import Testing

/// What a CI engineer sees (issue 22): output that reaches a CI log as it happens, and a
/// pipeline reader that goes away ending the command quietly.
@Suite struct CIUsageTests {
    @Test func submitWaitWritesEachChangeToAFileWhileTheRunIsStillGoing() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = try api.file("slow.yml", """
            pipeline: slow
            environment: staging
            steps:
              - { id: quick, kind: noop }
              - { id: slow, kind: noop, needs: [quick], with: { sleep_ms: 4000 } }
            """)
        // stdout is a file, as a CI log is.
        let outPath = env.logDirectory + "-submit.out"
        let process = try Self.submitWaitingIntoFile(pipeline, outPath: outPath, api: api, token: token)
        try await env.eventually("the quick step's success in the file") {
            ((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").contains("quick")
                && ((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").contains("succeeded")
        }
        // Written while the slow step still runs, not when the command ends.
        #expect(process.isRunning)
        try await Command.exit(of: process, what: "gantry submit --wait")
        #expect(process.terminationStatus == 0)
        _ = (dispatcher, worker)
    }

    @Test func aReaderThatGoesAwayEndsLogsQuietly() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let long = String(repeating: "x", count: 600_000)
        let run = try await api.submit("""
            pipeline: loud
            environment: staging
            steps: [{ id: talk, kind: noop, with: { log: "\(long)" } }]
            """, token: token).json.id
        try await api.wait(run, token: token)
        let result = try await Command.run(
            "/bin/bash", ["-c", "\"$0\" logs \"$1\" --step talk | head -c 1 >/dev/null; echo \"${PIPESTATUS[0]}\"", env.binary, run],
            environment: ProcessInfo.processInfo.environment.merging(["GANTRY_URL": api.base, "GANTRY_TOKEN": token]) { $1 },
            stem: env.logDirectory + "-head"
        )
        let (status, errors) = (result.out, result.err)
        // 141 (SIGPIPE's status) or 0 when everything fit in the pipe first; never a crash, never a word on stderr.
        #expect(["141", "0"].contains(status.trimmingCharacters(in: .whitespacesAndNewlines)), "\(status)")
        #expect(errors.isEmpty, "\(errors)")
        _ = (dispatcher, worker)
    }

    @Test func exitStatusesTellCIWhatHappened() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        func pipeline(_ name: String, _ steps: String) throws -> String {
            try api.file("\(name).yml", "pipeline: \(name)\nenvironment: staging\n" + steps)
        }
        let good = try pipeline("good", "steps: [{ id: a, kind: noop }]\n")
        let failing = try pipeline("failing", "steps: [{ id: a, kind: noop, retry: { max_attempts: 1 }, with: { exit_code: 3 } }]\n")
        let cleanup = try pipeline("cleanup", """
            steps: [{ id: a, kind: noop }]
            finally: [{ id: tell, kind: noop, retry: { max_attempts: 1 }, with: { exit_code: 1 } }]
            """)
        // 0: succeeded; 1: the run failed; 4: succeeded, but a finally step failed, and it says so.
        #expect(try await api.cli(["submit", "--pipeline", good, "--sha", "3f2a9c1", "--wait"], token: token).status == 0)
        #expect(try await api.cli(["submit", "--pipeline", failing, "--sha", "3f2a9c1", "--wait"], token: token).status == 1)
        let cleaned = try await api.cli(["submit", "--pipeline", cleanup, "--sha", "3f2a9c1", "--wait"], token: token)
        #expect(cleaned.status == 4, "\(cleaned)")
        #expect(cleaned.out.contains("run succeeded, but finally step tell failed"), "\(cleaned.out)")
        let json = try await api.cli(["submit", "--pipeline", cleanup, "--sha", "3f2a9c1", "--wait", "--output", "json"], token: token)
        #expect(json.status == 4 && json.out.contains(#""cleanup_failed":["tell"]"#), "\(json.out)")
        // 2: refused (a 4xx), here an environment the token may not submit to.
        let other = try api.file("other.yml", "pipeline: other\nenvironment: production\nsteps: [{ id: a, kind: noop }]\n")
        let refused = try await api.cli(["submit", "--pipeline", other, "--sha", "3f2a9c1"], token: token)
        #expect(refused.status == 2 && refused.err.hasPrefix("Error: "), "\(refused)")
        // 64: the command was given wrongly or is not configured; nothing was sent.
        for (arguments, message) in [
            (["submit", "--pipeline", env.logDirectory + "-missing.yml", "--sha", "3f2a9c1"], "--pipeline"),
            (["submit", "--pipeline", good, "--sha", "3f2a9c1", "--param", "novalue"], "--param 'novalue'"),
            (["submit", "--pipeline", good, "--sha", "zz"], "--sha 'zz'"),
            (["run", "x", "--token-file", env.logDirectory + "-no-token"], "--token-file"),
        ] {
            let result = try await api.cli(arguments, token: token)
            #expect(result.status == 64, "\(arguments): \(result)")
            #expect(result.err.contains(message), "\(arguments): \(result.err)")
        }
        // 3: the API is not there.
        let unreachable = APIHarness(env: env, port: try APIHarness.freePort())
        #expect(try await unreachable.cli(["runs"], token: token).status == 3)
        _ = (dispatcher, worker)
    }

    @Test func aScriptTakesTheRunIdAndReattachesWithWait() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = try api.file("later.yml", """
            pipeline: later
            environment: staging
            steps: [{ id: a, kind: noop, with: { sleep_ms: 500 } }, { id: b, kind: noop, needs: [a] }]
            """)
        let submitted = try await api.cli(["submit", "--pipeline", pipeline, "--sha", "3f2a9c1", "--output", "id"], token: token)
        let id = submitted.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(submitted.status == 0 && Identifiers.isValidRunID(id), "\(submitted)")
        let waited = try await api.cli(["wait", id], token: token)
        #expect(waited.status == 0, "\(waited)")
        #expect(waited.out.contains("b: succeeded") && waited.out.contains("run succeeded"), "\(waited.out)")
        // Waiting on a run that already ended returns at once with its outcome.
        let again = try await api.cli(["wait", id, "--output", "id"], token: token)
        #expect(again.status == 0 && again.out == id + "\n", "\(again)")
        #expect(try await api.cli(["wait", "0193a000-0000-7000-8000-000000000000"], token: token).status == 2)
        _ = (dispatcher, worker)
    }

    @Test func approvalsListEveryApproverTellATimeoutFromARejectionAndShowWhatWaitsForMe() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let ci = try await api.token("ci", [.submitter], env: ["production"])
        let alice = try await api.token("alice", [.approver], env: ["production"])
        let bob = try await api.token("bob", [.approver], env: ["production"])
        let carol = try await api.token("carol", [.approver], env: ["staging"])
        func submit(_ timeout: String) async throws -> String {
            try await api.submit("""
                pipeline: gated
                environment: production
                steps:
                  - { id: gate, kind: approval, with: { required: 2, timeout: \(timeout), approvers: [alice, bob] } }
                  - { id: go, kind: noop, needs: [gate] }
                """, token: ci).json.id
        }
        let run = try await submit("1h")
        try await api.wait(run, token: ci, for: "the gate") { $0.steps.first?.status == "awaiting_approval" }
        // What waits for me: alice and bob see the gate; carol (staging) and the submitter do not.
        let mine = try await api.cli(["runs", "--awaiting-approval"], token: alice)
        #expect(mine.status == 0 && mine.out.contains(run) && mine.out.contains("approval of step gate (0/2)"), "\(mine)")
        #expect(try await api.cli(["runs", "--awaiting-approval"], token: carol).out.isEmpty)
        #expect(try await api.cli(["runs", "--awaiting-approval"], token: ci).out.isEmpty)
        #expect(try await api.cli(["approve", run, "--step", "gate"], token: alice).status == 0)
        #expect(try await api.cli(["runs", "--awaiting-approval"], token: alice).out.isEmpty, "alice has approved already")
        #expect(try await api.cli(["runs", "--awaiting-approval"], token: bob).out.contains(run))
        #expect(try await api.cli(["approve", run, "--step", "gate"], token: bob).status == 0)
        let approved = try await api.wait(run, token: ci)
        #expect(approved.status == "succeeded")
        #expect(approved.steps[0].approvals?.approvedBy == ["alice", "bob"])
        #expect(approved.steps[0].approvals?.state == "approved")
        // A gate that times out is not a rejection.
        let late = try await submit("1s")
        let timedOut = try await api.wait(late, token: ci)
        #expect(timedOut.status == "failed")
        let gate = try #require(timedOut.steps.first)
        #expect(gate.approvals?.state == "timed_out" && gate.approvals?.deadline != nil)
        #expect(gate.lastError?.hasPrefix("approval timed out at ") == true && gate.lastError?.hasSuffix("with 0 of 2 approvals") == true, "\(gate.lastError ?? "")")
        let shown = try await api.cli(["run", late], token: ci)
        #expect(shown.out.contains("timed out: approval timed out at"), "\(shown.out)")
        let rejected = try await submit("1h")
        try await api.wait(rejected, token: ci, for: "the gate") { $0.steps.first?.status == "awaiting_approval" }
        #expect(try await api.cli(["reject", rejected, "--step", "gate", "--comment", "not now"], token: bob).status == 0)
        let no = try await api.wait(rejected, token: ci)
        #expect(no.steps[0].approvals?.state == "rejected" && no.steps[0].lastError == "rejected by bob")
        _ = (dispatcher, worker)
    }

    @Test func deadLettersCoverEveryKindAndAWorkerSaysWhichFleetFileItUsed() async throws {
        let env = try await TestEnvironment.make()
        let redis = env.redis()
        // Two deliveries that are not jobs, in two kinds' queues (one of them a pool's).
        try await redis.command(["XADD", env.keys.stream("noop"), "*", "garbage", "1"])
        try await redis.command(["XADD", env.keys.stream("build@production"), "*", "garbage", "2"])
        let noop = try env.worker("w-noop")
        let build = try env.worker("w-build", kind: "build", extra: ["--pool", "production", "--fleet-dir", env.logDirectory + "-nowhere"])
        #expect(await build.waitForExit(timeout: .seconds(10)) == 64)
        #expect(build.log.contains("--fleet-dir / GANTRY_FLEET_DIR \(env.logDirectory)-nowhere: no such directory"))
        let pooled = try env.worker("w-build2", kind: "build", extra: ["--pool", "production"])
        try await env.eventually("both deliveries dead-lettered") {
            let list = try await env.cli(["dlq", "list"])
            return list.out.contains("delivery noop ") && list.out.contains("delivery build@production ")
        }
        let only = try await env.cli(["dlq", "list", "--kind", "build@production"])
        #expect(only.status == 0 && only.out.contains("build@production") && !only.out.contains("delivery noop "))
        let bogus = try await env.cli(["dlq", "list", "--kind", "biuld"])
        #expect(bogus.status == 64 && bogus.err.contains("--kind 'biuld': not a step kind; did you mean 'build'?"), "\(bogus)")
        // The test runs from the repository: the noop worker found workers/noop.yaml.
        #expect(noop.log.contains("fleet file workers/noop.yaml for noop: concurrency"), "\(noop.log)")
        _ = (noop, pooled)
    }

    @Test func parametersAreDeclaredCheckedAndNeverSmuggleALine() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1", kind: "build")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let file = try api.file("params.yml", """
            pipeline: params
            environment: staging
            params:
              msg: { required: true }
              region: { values: [eu-west-1, us-east-1], default: eu-west-1 }
              replicas: { type: integer, default: 2 }
              notes: { multiline: true, default: "" }
            steps:
              - id: out
                kind: build
                with:
                  run: |
                    echo "k=${{ run.params.msg }}" >> "$GANTRY_OUTPUT"
                    echo "region=${{ run.params.region }} replicas=${{ run.params.replicas }}"
            """)
        func submit(_ params: [String]) async throws -> (status: Int32, out: String, err: String) {
            try await api.cli(["submit", "--pipeline", file, "--sha", "3f2a9c1", "--wait", "--output", "json"] + params.flatMap { ["--param", $0] }, token: token)
        }
        // The documented output line cannot be made to write a second output: msg is one line.
        let injected = try await submit(["msg=hello\ninjected=yes"])
        #expect(injected.status == 2 && injected.err.contains("parameter 'msg' is one line (declare it multiline: true to take several)"), "\(injected)")
        let undeclared = try await submit(["msg=hi", "regoin=us-east-1"])
        #expect(undeclared.status == 2 && undeclared.err.contains("parameter 'regoin' is not declared under params: (it declares msg, region, replicas, notes; did you mean 'region'?)"), "\(undeclared)")
        let missing = try await submit([])
        #expect(missing.status == 2 && missing.err.contains("parameter 'msg' is required: give --param msg=VALUE"), "\(missing)")
        let wrong = try await submit(["msg=hi", "replicas=two"])
        #expect(wrong.status == 2 && wrong.err.contains("parameter 'replicas' 'two' is not a whole number"), "\(wrong)")
        let outside = try await submit(["msg=hi", "region=mars-1"])
        #expect(outside.status == 2 && outside.err.contains("parameter 'region' 'mars-1' is not one of eu-west-1, us-east-1"), "\(outside)")
        // A good one: given values and defaults reach the step.
        let ran = try await submit(["msg=hello"])
        #expect(ran.status == 0, "\(ran)")
        let view = try JSONDecoder().decode(RunView.self, from: Data(ran.out.utf8))
        #expect(view.steps.first?.attempts.last?.outputs == ["k": .string("hello")])
        #expect(try await api.cli(["logs", view.id, "--step", "out"], token: token).out == "region=eu-west-1 replicas=2\n")
        // plan applies the same checks, before any submit.
        let planned = try await api.cli(["plan", file, "--sha", "3f2a9c1", "--param", "nope=1"], token: token)
        #expect(planned.status == 64 && planned.err.contains("--param: parameter 'nope' is not declared"), "\(planned)")
        _ = (dispatcher, worker)
    }

    @Test func aRunningStepNamesItsWorkerAndAStepNobodyTakesSaysSo() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let file = try api.file("running.yml", """
            pipeline: running
            environment: staging
            steps: [{ id: slow, kind: noop, with: { sleep_ms: 6000 } }]
            """)
        // No worker yet: the step says nobody takes its queue, and how to start one.
        let outPath = env.logDirectory + "-running.out"
        let process = try Self.submitWaitingIntoFile(file, outPath: outPath, api: api, token: token)
        func written() -> String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
        try await env.eventually("the submit to print its run") { written().contains("submitted") }
        let id = try #require(written().split(separator: " ").dropFirst().first.map(String.init))
        let waiting = try await api.run(id, token: token)
        #expect(waiting.steps[0].status == "queued")
        #expect(waiting.steps[0].waitingFor == "no live worker takes noop: start one (gantry worker --kind noop)", "\(waiting.steps[0])")
        let worker = try env.worker("runner-1")
        // Then it runs: status running, with the worker and when it took the attempt.
        let running = try await api.wait(id, token: token, for: "the step to run") { $0.steps[0].status == "running" }
        #expect(running.steps[0].worker == "runner-1" && running.steps[0].startedAt != nil && running.steps[0].waitingFor == nil)
        let shown = try await api.cli(["run", id], token: token)
        #expect(shown.out.contains("slow") && shown.out.contains("running") && shown.out.contains("on runner-1 since"), "\(shown.out)")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        // The CI log said so, as it happened.
        let log = written()
        #expect(log.contains("slow: queued — no live worker takes noop"), "\(log)")
        #expect(log.contains("slow: running on runner-1"), "\(log)")
        _ = (dispatcher, worker)
    }

    @Test func aLargeRunIsSummarizedUnlessEveryStepIsAskedFor() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1", concurrency: 32)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let fan = (0..<60).map { "  - { id: s\($0), kind: noop\($0 == 7 ? ", retry: { max_attempts: 1 }, with: { exit_code: 2 }" : "") }" }
        let file = try api.file("fan.yml", "pipeline: fan\nenvironment: staging\nsteps:\n" + fan.joined(separator: "\n") + "\n")
        let submitted = try await api.cli(["submit", "--pipeline", file, "--sha", "3f2a9c1", "--wait", "--output", "id"], token: token)
        let id = submitted.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(submitted.status == 1, "\(submitted)")
        let summary = try await api.cli(["run", id], token: token)
        #expect(summary.out.contains("  60 steps: 1 failed, 59 succeeded"), "\(summary.out)")
        #expect(summary.out.contains("✗ s7 "), "the failed step comes first: \(summary.out)")
        #expect(summary.out.contains("… 59 more steps (gantry run \(id) --all shows every one)"))
        #expect(summary.out.split(separator: "\n").count < 10)
        let every = try await api.cli(["run", id, "--all"], token: token)
        #expect(every.out.split(separator: "\n").filter { $0.contains(" noop ") }.count == 60)
        _ = (dispatcher, worker)
    }

    /// Starts `gantry submit --wait` with its stdout written to a file, as a CI log is.
    static func submitWaitingIntoFile(_ pipeline: String, outPath: String, api: APIHarness, token: String) throws -> Process {
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: api.env.binary)
        process.arguments = ["submit", "--pipeline", pipeline, "--sha", "3f2a9c1", "--wait"]
        process.environment = ProcessInfo.processInfo.environment.merging(["GANTRY_URL": api.base, "GANTRY_TOKEN": token]) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }
}
