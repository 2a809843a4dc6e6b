import Foundation
import GantryCore
import GantryHTTP
import GantryPostgres
import GantryRedis
import GantryTestSupport
import Testing

/// Pipelines run end to end through the API: a dispatcher process serving
/// `--listen`, noop workers, the CLI as CI uses it, real Redis and Postgres.
@Suite struct RunAPITests {
    static let fanOut = """
        pipeline: fan
        environment: staging
        params: { region: { default: eu-west-1 } }
        steps:
          - { id: build, kind: noop, with: { sleep_ms: 20, output: { image: "api:${{ run.sha }}", region: "${{ run.params.region }}" } } }
          - { id: t1, kind: noop, needs: [build] }
          - { id: t2, kind: noop, needs: [build] }
          - { id: t3, kind: noop, needs: [build] }
          - { id: deploy, kind: noop, needs: [t1, t2, t3], with: { output: { deployed: "${{ steps.build.outputs.image }}" } } }
        on_failure:
          - { id: rollback, kind: noop }
        finally:
          - { id: announce, kind: noop }
        """

    @Test func fanOutFanInWithOutputsFlowingThroughTheCLI() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let file = try api.file("fan.yml", Self.fanOut)
        let result = try await api.cli(["submit", "--pipeline", file, "--sha", "3F2A9C1", "--param", "region=eu", "--wait", "--output", "json"], token: token)
        #expect(result.status == 0, "stderr: \(result.err)")
        let run = try JSONDecoder().decode(RunView.self, from: Data(result.out.utf8))
        #expect(run.status == "succeeded")
        #expect(run.submitter == "ci")
        let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
        #expect(steps["deploy"]?.attempts.last?.outputs["deployed"] == .string("api:3f2a9c1"))
        #expect(steps["build"]?.attempts.last?.outputs["region"] == .string("eu"))
        #expect(steps["rollback"]?.status == "skipped")
        #expect(steps["announce"]?.status == "succeeded")
        // Fan-in: deploy started after the last test step finished.
        let testsEnd = ["t1", "t2", "t3"].compactMap { steps[$0]?.attempts.last?.finishedAt }.max() ?? ""
        #expect((steps["deploy"]?.attempts.last?.startedAt ?? "") >= testsEnd)
        // Progress went to stderr as plain lines.
        #expect(result.err.contains("deploy: succeeded"))
        _ = (dispatcher, worker)
    }

    @Test func aFailureRunsOnFailureThenFinallyAndTheCLIExitsOne() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = Self.fanOut.replacingOccurrences(of: "{ id: t2, kind: noop, needs: [build] }", with: "{ id: t2, kind: noop, needs: [build], retry: { max_attempts: 2, backoff: { initial: 10ms } }, with: { exit_code: 3 } }")
        let result = try await api.cli(["submit", "--pipeline", try api.file("fail.yml", pipeline), "--sha", "abc1234", "--wait"], token: token)
        #expect(result.status == 1)
        let id = try #require(result.out.split(separator: " ").dropFirst().first.map(String.init))
        let run = try await api.run(id, token: token)
        let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
        #expect(run.status == "failed")
        #expect(steps["t2"]?.attempts.map(\.status) == ["failed", "failed"])
        #expect(steps["deploy"]?.status == "skipped")
        #expect(steps["rollback"]?.status == "succeeded")
        #expect(steps["announce"]?.status == "succeeded")
        #expect((steps["announce"]?.attempts.last?.startedAt ?? "") >= (steps["rollback"]?.attempts.last?.finishedAt ?? "~"))
        _ = (dispatcher, worker)
    }

    @Test func twoApproversSelfApprovalRefusedAndAnApprovalTimeoutFailsTheGate() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let pipeline = """
            pipeline: gated
            environment: production
            steps:
              - { id: gate, kind: approval, with: { required: 2, distinct_from_submitter: true, timeout: 1h } }
              - { id: deploy, kind: noop, needs: [gate] }
            """
        let lead = try await api.token("lead", [.submitter, .approver], env: ["production"])
        let ann = try await api.token("ann", [.approver], env: ["production"])
        let bob = try await api.token("bob", [.approver], env: ["production"])
        let id = try await api.submit(pipeline, token: lead).json.id
        var run = try await api.wait(id, token: lead, for: "the gate") { $0.steps.first?.status == "awaiting_approval" }
        #expect(run.steps[0].waitingFor?.hasPrefix("waiting for approval (0/2)") == true)
        let own = try await api.call(.post, "/v1/runs/\(id)/approve", token: lead, body: ["step": .string("gate")])
        #expect(own.status == 403)
        #expect(own.json.error.contains("needs an approver other than the submitter"))
        #expect(try await api.call(.post, "/v1/runs/\(id)/approve", token: ann, body: ["step": .string("gate"), "comment": .string("diff reviewed")]).status == 200)
        #expect(try await api.call(.post, "/v1/runs/\(id)/approve", token: ann, body: ["step": .string("gate")]).status == 409)
        run = try await api.run(id, token: ann)
        #expect(run.steps[0].waitingFor?.hasPrefix("waiting for approval (1/2)") == true)
        #expect(try await api.call(.post, "/v1/runs/\(id)/approve", token: bob, body: ["step": .string("gate")]).status == 200)
        run = try await api.wait(id, token: lead)
        #expect(run.status == "succeeded")
        #expect(run.steps[0].approvals?.decisions.map(\.by) == ["ann", "bob"])
        #expect(run.steps[0].approvals?.decisions.first?.comment == "diff reviewed")

        // A gate nobody answers fails when its timeout passes.
        let short = pipeline.replacingOccurrences(of: "timeout: 1h", with: "timeout: 1s")
        let late = try await api.submit(short, token: lead).json.id
        let timedOut = try await api.wait(late, token: lead, timeout: .seconds(15))
        #expect(timedOut.status == "failed")
        #expect(timedOut.steps.map(\.status) == ["failed", "skipped"])
        _ = (dispatcher, worker)
    }

    @Test func threeConcurrentSubmitsToOneGroupRunOneAtATimeInOrder() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["production"])
        let approver = try await api.token("ops", [.approver], env: ["production"])
        // Each run holds the group at its gate until approved, so the queue is observable.
        let pipeline = """
            pipeline: serial
            environment: production
            concurrency: { group: production, on_busy: queue }
            steps:
              - { id: gate, kind: approval, with: { timeout: 1h } }
              - { id: deploy, kind: noop, needs: [gate], with: { sleep_ms: 50 } }
            """
        async let a = api.submit(pipeline, token: token)
        async let b = api.submit(pipeline, token: token)
        async let c = api.submit(pipeline, token: token)
        let submitted = try await [a, b, c]
        #expect(submitted.map(\.status) == [201, 201, 201], "\(submitted.map(\.json.error))")
        let ids = submitted.map(\.json.id).sorted()
        #expect(try await api.run(ids[0], token: token).status == "running")
        for (index, id) in ids.enumerated().dropFirst() {
            let run = try await api.run(id, token: token)
            #expect(run.status == "waiting")
            #expect(run.waitingFor == "behind run \(ids[index - 1]) in group production")
        }
        let listing = try await api.cli(["runs", "--status", "waiting"], token: token)
        #expect(listing.out.contains("behind run \(ids[1]) in group production"))
        var runs: [RunView] = []
        for id in ids {
            try await api.wait(id, token: token, for: "run \(id) to reach its gate") { $0.steps.first?.status == "awaiting_approval" }
            for other in ids where other > id {
                #expect(try await api.run(other, token: token).status == "waiting")
            }
            #expect(try await api.call(.post, "/v1/runs/\(id)/approve", token: approver, body: ["step": .string("gate")]).status == 200)
            runs.append(try await api.wait(id, token: token))
        }
        #expect(runs.allSatisfy { $0.status == "succeeded" })
        for (earlier, later) in zip(runs, runs.dropFirst()) {
            #expect((later.startedAt ?? "") >= (earlier.finishedAt ?? "~"), "runs overlapped")
        }
        _ = (dispatcher, worker)
    }

    @Test func cancelStopsTheRunningStepAndFinallyStillRuns() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: long
            environment: staging
            steps:
              - { id: work, kind: noop, with: { hang: true } }
              - { id: after, kind: noop, needs: [work] }
            finally:
              - { id: cleanup, kind: noop }
            """
        let submitted = try await api.submit(pipeline, token: token)
        try #require(submitted.status == 201, "\(submitted.json)")
        let id = submitted.json.id
        try await env.eventually("the step to be held by the worker") {
            try await env.queue.expired(kind: "noop", minIdle: .zero, count: 10, on: env.redis()).count == 1
        }
        let canceled = try await api.cli(["cancel", id], token: token)
        #expect(canceled.status == 0, "\(canceled.err)")
        let run = try await api.wait(id, token: token, timeout: .seconds(10))
        #expect(run.status == "canceled")
        #expect(run.steps.map(\.status) == ["canceled", "skipped", "succeeded"])
        #expect(run.steps[0].attempts.map(\.status) == ["canceled"])
        #expect(try await api.call(.post, "/v1/runs/\(id)/cancel", token: token).status == 409)
        _ = (dispatcher, worker)
    }

    @Test func aStepCanceledWhileItWaitedInTheQueueNeverRunsOnAWorkerThatStartsLater() async throws {
        // Found by hand: cancel a run whose step waits for a worker, start a worker, and the step
        // ran — the new worker's first read came before its first look at the cancel list. The
        // dispatcher's withdrawal of such attempts is held off (its first pass runs at start), so
        // it is the worker that must recognise the canceled attempt it is handed.
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env, extra: ["--withdraw-interval", "1h"])
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: waits
            environment: staging
            steps:
              - { id: work, kind: noop, with: { sleep_ms: 2000 } }
            finally:
              - { id: cleanup, kind: noop }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        let canceled = try await api.cli(["cancel", id], token: token)
        #expect(canceled.status == 0, "\(canceled.err)")
        let worker = try env.worker("late")
        let run = try await api.wait(id, token: token, timeout: .seconds(10))
        #expect(run.status == "canceled")
        #expect(run.steps.map(\.status) == ["canceled", "succeeded"])
        #expect(run.steps[0].attempts.map(\.status) == ["canceled"])
        #expect(run.steps[0].attempts.first?.error == "the run was canceled before this attempt started")
        #expect(run.steps[0].attempts.first?.worker == "late")
        _ = (dispatcher, worker)
    }

    @Test func aCanceledRunEndsAtOnceWhenNoWorkerOfItsStepsKindIsRunning() async throws {
        // Found by hand: with no worker of the kind running, a canceled run stayed `running` until
        // one came. The dispatcher now takes the waiting attempt out of the stream itself.
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: nobody-home
            environment: staging
            steps:
              - { id: work, kind: noop }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        try await api.wait(id, token: token, for: "the step to be queued") { $0.steps.first?.status == "queued" }
        let canceled = try await api.cli(["cancel", id], token: token)
        #expect(canceled.status == 0, "\(canceled.err)")
        let run = try await api.wait(id, token: token, timeout: .seconds(10))
        #expect(run.status == "canceled")
        let attempts = try #require(run.steps.first?.attempts)
        #expect(attempts.map(\.status) == ["canceled"])
        #expect(attempts.first?.error == "the run was canceled before this attempt started")
        #expect(attempts.first?.worker.hasPrefix("dispatcher-") == true)
        #expect(try await env.queue.depth(kind: "noop", on: env.redis()) == (0, 0))
        // A worker that starts now has nothing to run: a run submitted after the cancel is queued
        // behind where the withdrawn attempt was, so once the worker has run it, it has read past
        // that place, and the canceled run still has its one attempt.
        let worker = try env.worker("late")
        let after = try await api.submit(pipeline, token: token).json.id
        #expect(try await api.wait(after, token: token, timeout: .seconds(20)).status == "succeeded")
        #expect(try await api.run(id, token: token).steps.first?.attempts.count == 1)
        _ = (dispatcher, worker)
    }

    @Test func theReconcilerRecordsACanceledAttemptRedisLostInsteadOfEnqueuingIt() async throws {
        // As if a dispatcher withdrew the attempt and stopped before recording it: the job is gone
        // from Redis, the cancel is on the list, the step still queued in Postgres. The dispatcher's
        // withdraw pass (every second) finds nothing to withdraw; the reconciler, once the step has
        // been quiet for 2.5 s, must record it canceled rather than put it back in the queue.
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env, extra: ["--reconcile-after", "2500ms", "--reconcile-interval", "300ms"])
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: lost-and-canceled
            environment: staging
            steps:
              - { id: work, kind: noop }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        try await api.wait(id, token: token, for: "the step to be queued") { $0.steps.first?.status == "queued" }
        let redis = env.redis()
        let entries = try await redis.command(["XRANGE", env.keys.stream("noop"), "-", "+"]).array ?? []
        #expect(entries.count == 1)
        for entry in entries { try await redis.command(["XDEL", env.keys.stream("noop"), entry.array?[0].string ?? ""]) }
        let canceled = try await api.cli(["cancel", id], token: token)
        #expect(canceled.status == 0, "\(canceled.err)")
        let run = try await api.wait(id, token: token, timeout: .seconds(10))
        #expect(run.status == "canceled")
        #expect(run.steps.first?.attempts.map(\.status) == ["canceled"])
        #expect(run.steps.first?.attempts.first?.worker.hasPrefix("dispatcher-") == true)
        #expect(try await redis.command(["XLEN", env.keys.stream("noop")]).integer == 0)
        _ = dispatcher
    }

    @Test func aCanceledRunDoesNotWaitForARetryDueLater() async throws {
        // The retry is due in exactly 60 s (no jitter: full jitter could make it due at once).
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: slow-retry
            environment: staging
            steps:
              - { id: flaky, kind: noop, retry: { max_attempts: 3, backoff: { initial: 60s, max: 60s, jitter: none } }, with: { fail_first: 1 } }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        try await api.wait(id, token: token, for: "the retry to be scheduled") { $0.steps.first?.status == "retrying" }
        let redis = env.redis()
        #expect(try await redis.command(["ZCARD", env.keys.delayed]).integer == 1)
        let canceled = try await api.cli(["cancel", id], token: token)
        #expect(canceled.status == 0, "\(canceled.err)")
        let run = try await api.wait(id, token: token, timeout: .seconds(10))
        #expect(run.status == "canceled")
        #expect(run.steps.first?.attempts.map(\.status) == ["failed", "canceled"])
        #expect(run.steps.first?.attempts.last?.attempt == 2)
        #expect(try await redis.command(["ZCARD", env.keys.delayed]).integer == 0)
        _ = (dispatcher, worker)
    }

    @Test func retryOfOneFailedStepRunsItAndWhatItHeldUpAsNewAttempts() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: flaky
            environment: staging
            steps:
              - { id: ok, kind: noop }
              - { id: flaky, kind: noop, retry: { max_attempts: 1 }, with: { fail_first: 1 } }
              - { id: after, kind: noop, needs: [flaky] }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        #expect(try await api.wait(id, token: token).status == "failed")
        #expect(try await api.call(.post, "/v1/runs/\(id)/retry", token: token, body: ["step": .string("ok")]).status == 409)
        let retried = try await api.cli(["retry", id, "--step", "flaky"], token: token)
        #expect(retried.status == 0, "\(retried.err)")
        let run = try await api.wait(id, token: token)
        #expect(run.status == "succeeded")
        let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
        #expect(steps["flaky"]?.attempts.map(\.attempt) == [1, 2])
        #expect(steps["ok"]?.attempts.count == 1)
        #expect(steps["after"]?.attempts.map(\.status) == ["succeeded"])
        _ = (dispatcher, worker)
    }

    @Test func theSameIdempotencyKeyReturnsTheSameRun() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let extra: [String: JSONValue] = ["idempotency_key": .string("deploy-3f2a9c1")]
        async let a = api.submit(Self.fanOut, token: token, extra: extra)
        async let b = api.submit(Self.fanOut, token: token, extra: extra)
        let (first, second) = try await (a, b)
        #expect(Set([first.status, second.status]) == [201, 200])
        #expect(first.json.id == second.json.id)
        let count = try await env.db().run("SELECT count(*) AS n FROM runs")[0].int("n")
        #expect(count == 1)
        _ = dispatcher
    }

    @Test func promotionIsRefusedUntilTheSHASucceededInStagingAndConfirmMustMatch() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging", "production"])
        let production = """
            pipeline: prod
            environment: production
            gates: { confirm: "DEPLOY TO PRODUCTION", promote_from: staging }
            steps:
              - { id: deploy, kind: noop }
            """
        let confirm: [String: JSONValue] = ["confirm": .string("DEPLOY TO PRODUCTION")]
        let refused = try await api.submit(production, token: token, sha: "beefcafe", extra: confirm)
        #expect(refused.status == 422)
        #expect(refused.json.error == "gate promote_from: SHA beefcafe has no succeeded run in staging; deploy it there first")
        let staged = try await api.submit(Self.fanOut, token: token, sha: "beefcafe").json.id
        #expect(try await api.wait(staged, token: token).status == "succeeded")
        let wrong = try await api.submit(production, token: token, sha: "beefcafe", extra: ["confirm": .string("deploy to production")])
        #expect(wrong.status == 422 && wrong.json.error.hasPrefix("gate confirm:"))
        let accepted = try await api.cli(["submit", "--pipeline", try api.file("prod.yml", production), "--sha", "beefcafe",
                                          "--confirm", "DEPLOY TO PRODUCTION", "--wait"], token: token)
        #expect(accepted.status == 0, "\(accepted.err)")
        let refusedByCLI = try await api.cli(["submit", "--pipeline", try api.file("prod.yml", production), "--sha", "0badc0de"], token: token)
        #expect(refusedByCLI.status == 2)
        #expect(refusedByCLI.err == "Error: gate confirm: pipeline prod needs --confirm \"DEPLOY TO PRODUCTION\"\n")
        _ = (dispatcher, worker)
    }

    @Test func pathFiltersSkipStepsWhoseFilesDidNotChange() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: mono
            environment: staging
            steps:
              - { id: api, kind: noop, when: { paths: ["services/api/**"] } }
              - { id: billing, kind: noop, when: { paths: ["services/billing/**"] } }
              - { id: smoke, kind: noop, needs: [api, billing] }
            """
        let result = try await api.cli(["submit", "--pipeline", try api.file("mono.yml", pipeline), "--sha", "abcdef0",
                                        "--changed-files", "-", "--wait", "--output", "json"], token: token, stdin: "services/api/main.swift\nREADME.md\n")
        #expect(result.status == 0, "\(result.err)")
        let run = try JSONDecoder().decode(RunView.self, from: Data(result.out.utf8))
        #expect(run.steps.map(\.status) == ["succeeded", "skipped", "succeeded"])
        #expect(run.steps[1].skipReason == "no changed file matches when.paths services/billing/**")
        _ = (dispatcher, worker)
    }

    @Test func logsFollowAStepWhileItRunsAndStayReadableAfterwards() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: logged
            environment: staging
            steps:
              - { id: talk, kind: noop, with: { log: "hello from ${{ run.sha }}", sleep_ms: 1500 } }
              - { id: quiet, kind: noop, needs: [talk] }
            """
        // Followed from the submit on: before, while and after the step runs.
        let id = try await api.submit(pipeline, token: token).json.id
        let followed = try await api.cli(["logs", id, "--step", "talk", "--follow"], token: token)
        #expect(followed.status == 0, "\(followed.err)")
        #expect(followed.out == "hello from 3f2a9c1\n")
        // It waited for the attempt to end (the ledger has its outcome before the log's end is
        // shipped), then stopped by itself.
        #expect(try await api.run(id, token: token).steps[0].attempts.first?.status == "succeeded")
        try await api.wait(id, token: token)
        #expect(try await api.cli(["logs", id, "--step", "talk"], token: token).out == "hello from 3f2a9c1\n")
        // A step that logged nothing: empty, and --follow ends with the attempt.
        let quiet = try await api.cli(["logs", id, "--step", "quiet", "--follow"], token: token)
        #expect(quiet.status == 0 && quiet.out.isEmpty)
        let missing = try await api.cli(["logs", id, "--step", "nope"], token: token)
        #expect(missing.status == 2 && missing.err.contains("has no step nope"))
        _ = (dispatcher, worker)
    }

    @Test func followedLogsShareOneWatchAndOneReaderConnection() async throws {
        let env = try await TestEnvironment.make()
        let replica = "share-\(env.namespace)"
        let (api, dispatcher) = try await APIHarness.start(env, name: replica)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: followed
            environment: staging
            steps:
              - { id: talk, kind: noop, with: { log: "line for ${{ run.sha }}", sleep_ms: 4000 } }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        let threadsBefore = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(dispatcher.pid)/task").count
        let redis = env.redis()
        func logClients() async throws -> [String] {
            let list = try await redis.command(["CLIENT", "LIST"]).string ?? ""
            return list.split(separator: "\n").compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix("name=gantry-api-logs") && $0.hasSuffix(replica) }.map(String.init)
            }
        }
        let followers = 12
        let outputs = try await withThrowingTaskGroup(of: (status: Int32, out: String, err: String).self) { group in
            for _ in 0..<followers {
                group.addTask { try await api.cli(["logs", id, "--step", "talk", "--follow"], token: token) }
            }
            // While they follow: one connection watches, one reads, however many follow.
            try await env.eventually("the followers to be watched") { try await logClients().count == 2 }
            #expect(try await logClients().sorted() == ["name=gantry-api-logs-\(replica)", "name=gantry-api-logs-watch-\(replica)"])
            let threadsDuring = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(dispatcher.pid)/task").count
            #expect(threadsDuring <= threadsBefore + 2, "threads \(threadsBefore) → \(threadsDuring) for \(followers) followers")
            var all: [(status: Int32, out: String, err: String)] = []
            for try await output in group { all.append(output) }
            return all
        }
        #expect(outputs.count == followers)
        for output in outputs {
            #expect(output.status == 0 && output.out == "line for 3f2a9c1\n", "\(output)")
        }
        // The log ends when the worker has shipped its last line; the run, once its outcome is applied.
        #expect(try await api.wait(id, token: token).status == "succeeded")
        _ = (dispatcher, worker)
    }

    @Test func onBusyRejectRefusesAndCancelPendingReplacesTheWaitingRun() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let token = try await api.token("ci", [.submitter], env: ["production"])
        let approver = try await api.token("ops", [.approver], env: ["production"])
        func pipeline(_ onBusy: String) -> String {
            """
            pipeline: busy-\(onBusy)
            environment: production
            concurrency: { group: prod, on_busy: \(onBusy) }
            steps:
              - { id: gate, kind: approval, with: { timeout: 1h } }
            """
        }
        let holder = try await api.submit(pipeline("queue"), token: token).json.id
        try await api.wait(holder, token: token, for: "the holder's gate") { $0.steps.first?.status == "awaiting_approval" }
        let refused = try await api.submit(pipeline("reject"), token: token)
        #expect(refused.status == 422)
        #expect(refused.json.error == "gate concurrency: group prod is busy with run \(holder) (on_busy: reject); submit again when it finishes")
        let older = try await api.submit(pipeline("queue"), token: token).json.id
        #expect(try await api.run(older, token: token).status == "waiting")
        let newer = try await api.submit(pipeline("cancel-pending"), token: token).json.id
        let replaced = try await api.run(older, token: token)
        #expect(replaced.status == "canceled")
        #expect(replaced.steps.map(\.status) == ["skipped"])
        #expect(try await api.run(newer, token: token).waitingFor == "behind run \(holder) in group prod")
        // A waiting run can be canceled too; the holder finishing starts nothing that was canceled.
        let third = try await api.submit(pipeline("queue"), token: token).json.id
        #expect(try await api.cli(["cancel", third], token: token).status == 0)
        #expect(try await api.run(third, token: token).status == "canceled")
        #expect(try await api.call(.post, "/v1/runs/\(holder)/approve", token: approver, body: ["step": .string("gate")]).status == 200)
        try await api.wait(newer, token: token, for: "the newer run to start") { $0.steps.first?.status == "awaiting_approval" }
        #expect(try await api.call(.post, "/v1/runs/\(newer)/reject", token: approver, body: ["step": .string("gate"), "comment": .string("not today")]).status == 200)
        let rejected = try await api.wait(newer, token: token)
        #expect(rejected.status == "failed")
        #expect(rejected.steps[0].approvals?.decisions.first?.decision == "rejected")
        _ = (dispatcher, worker)
    }
}
