import Foundation
import GantryCore
import GantryDispatcher
import GantryHTTP
import GantryPostgres
import GantryRedis
import GantryTestSupport
import Synchronization
import Testing

/// The attacks of issue 16, tried with ordinary tokens against a real dispatcher, workers,
/// Redis and Postgres: each is refused with the right status and one line, and nothing is
/// canceled, leaked or started.
@Suite struct EnvironmentPolicyTests {
    static let productionPolicy = """
        environment: production
        protection:
          confirm: "DEPLOY TO PRODUCTION"
          approvals: { required: 1, approvers: [alice, release], distinct_from_submitter: true, timeout: 4h }
          refs: [main]
          pipelines: [production]
        groups: { release: [bob] }
        secrets: [SLACK_WEBHOOK]
        pool: production
        concurrency: { group: production }
        targets: { local: { listen: ["127.0.0.1:8300"] } }
        """

    /// The production submitter's pipeline with no approval step: it used to run straight to the end.
    static let noApproval = """
        pipeline: production
        environment: production
        steps:
          - { id: build, kind: noop }
          - { id: deploy, kind: noop, needs: [build] }
        """

    func apply(_ policy: String, _ env: TestEnvironment) async throws {
        let parsed = try #require(EnvironmentPolicyParser().parse(policy, file: "policy.yml").policy)
        _ = try await EnvironmentStore().apply(
            name: parsed.name, definition: policy, sha256: APITokens.sha256Hex(policy), actor: "test-admin",
            namespace: env.namespace, on: env.adminDB()
        )
    }

    @Test func noStepStartsBeforeTheEnvironmentsApprovalAndOnlyListedApproversCount() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        // The policy sends production's steps to its pool: only a worker of that pool takes them.
        let worker = try env.worker("w1", extra: ["--pool", "production"])
        try await apply(Self.productionPolicy, env)
        let ci = try await api.token("ci-prod", [.submitter], env: ["production"])
        let mallory = try await api.token("mallory", [.approver], env: ["production"])
        let bob = try await api.token("bob", [.approver], env: ["production"])
        let body: [String: JSONValue] = ["confirm": .string("DEPLOY TO PRODUCTION"), "ref": .string("main")]

        let (status, json) = try await api.submit(Self.noApproval, token: ci, extra: body)
        #expect(status == 201, "\(json.error)")
        let run = json.id
        let waiting = try await api.wait(run, token: ci, for: "the gate") { $0.steps.first { $0.id == "approval" }?.status == "awaiting_approval" }
        #expect(waiting.steps.map(\.id) == ["approval", "build", "deploy"])
        #expect(waiting.steps.filter { $0.id != "approval" }.allSatisfy { $0.status == "pending" })

        // An approver token that the policy does not list is refused, and the gate stays shut.
        let refused = try await api.call(.post, "/v1/runs/\(run)/approve", token: mallory, body: ["step": .string("approval")])
        #expect(refused.status == 403)
        #expect(refused.json.error == "mallory is not an approver of step approval; its approvers are alice, bob")
        #expect(try await api.run(run, token: ci).steps.first { $0.id == "build" }?.status == "pending")

        // bob is in the policy's group `release`.
        let approved = try await api.call(.post, "/v1/runs/\(run)/approve", token: bob, body: ["step": .string("approval")])
        #expect(approved.status == 200, "\(approved.json.error)")
        let done = try await api.wait(run, token: ci)
        #expect(done.status == "succeeded")
        _ = (dispatcher, worker)
    }

    @Test func submitsTheEnvironmentDoesNotAllowAreRefusedNamingThePolicyLine() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        try await apply(Self.productionPolicy, env)
        let ci = try await api.token("ci-prod", [.submitter], env: ["production"])
        let confirm: [String: JSONValue] = ["confirm": .string("DEPLOY TO PRODUCTION"), "ref": .string("main")]
        let cases: [(pipeline: String, extra: [String: JSONValue], error: String)] = [
            (Self.noApproval, ["ref": .string("main")], "gate confirm: pipeline production needs --confirm \"DEPLOY TO PRODUCTION\""),
            (Self.noApproval, ["confirm": .string("DEPLOY TO PRODUCTION"), "ref": .string("feature/x")],
             "environment production (policy line 5, protection.refs): ref feature/x may not deploy here; allowed: main"),
            (Self.noApproval.replacingOccurrences(of: "pipeline: production", with: "pipeline: hotfix"), confirm,
             "environment production (policy line 6, protection.pipelines): pipeline hotfix may not run here; allowed: production"),
            (Self.noApproval + "\n  - { id: n, kind: notify, with: { channel: slack, webhook_url: \"${{ secrets.STAGING_HOOK }}\" } }", confirm,
             "step 'n': secret STAGING_HOOK is not one of environment production (policy line 8, secrets)'s: SLACK_WEBHOOK"),
            (Self.noApproval + "\n  - { id: d, kind: deploy, with: { service: api, version: v1, run: ./api, listen: \"127.0.0.1:9000\" } }", confirm,
             "step 'd': with.listen 127.0.0.1:9000 is not one of environment production (policy line 11, targets.local.listen)'s: 127.0.0.1:8300"),
        ]
        for (pipeline, extra, error) in cases {
            let (status, json) = try await api.submit(pipeline, token: ci, extra: extra)
            #expect(status == 422, "\(error): \(status) \(json.error)")
            #expect(json.error == error)
        }
        // Nothing was created by any of them.
        let list = try await api.call(.get, "/v1/runs", token: ci)
        #expect(list.json["runs"] == .array([]))
        _ = dispatcher
    }

    @Test func aStagingFileCannotReachProductionsGroupKeyOrRuns() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let prodCI = try await api.token("ci-prod", [.submitter], env: ["production"])
        let stagingCI = try await api.token("ci-staging", [.submitter], env: ["staging"])
        // A production run waiting behind another in its group (no worker: the first one holds it).
        let production = """
            pipeline: production
            environment: production
            steps: [{ id: a, kind: noop }]
            """
        let first = try await api.submit(production, token: prodCI).json.id
        let (_, queued) = try await api.submit(production, token: prodCI, extra: ["idempotency_key": .string("prod-key-1")])
        #expect(queued["status"] == .string("waiting"))

        // The staging file names the production group and asks to cancel what waits there.
        let sneaky = """
            pipeline: sneaky
            environment: staging
            concurrency: { group: production, on_busy: cancel-pending }
            steps: [{ id: a, kind: noop }]
            """
        let (status, json) = try await api.submit(sneaky, token: stagingCI)
        #expect(status == 201)
        #expect(json["status"] == .string("running"), "its group is staging's own")
        #expect(try await api.run(queued.id, token: prodCI).status == "waiting")
        #expect(try await api.run(first, token: prodCI).status == "running")

        // The production run's idempotency key, reused from staging, is staging's own key: a new
        // staging run, never production's (and no answer that tells the key exists there).
        let reuse = try await api.submit(sneaky, token: stagingCI, extra: ["idempotency_key": .string("prod-key-1")])
        #expect(reuse.status == 201 && reuse.json.id != queued.id && reuse.json["environment"] == .string("staging"))
        // The same request again still gets its own run; the key with another definition is a 409.
        let again = try await api.submit(production, token: prodCI, extra: ["idempotency_key": .string("prod-key-1")])
        #expect(again.status == 200 && again.json.id == queued.id)
        let changed = try await api.submit(production + "\n# changed\n", token: prodCI, extra: ["idempotency_key": .string("prod-key-1")])
        #expect(changed.status == 409)
        #expect(changed.json.error.hasPrefix("idempotency key prod-key-1 was already used in production for another submit"))

        // A run the token may not read does not exist for it: the same 404 as a made-up id.
        let hidden = try await api.call(.get, "/v1/runs/\(first)", token: stagingCI)
        let madeUp = try await api.call(.get, "/v1/runs/0190a5a4-0000-7000-8000-000000000000", token: stagingCI)
        #expect(hidden.status == 404 && madeUp.status == 404)
        #expect(try await api.call(.post, "/v1/runs/\(first)/cancel", token: stagingCI, body: [:]).status == 404)
        #expect(try await api.run(first, token: prodCI).status == "running")
        _ = dispatcher
    }

    @Test func hostileYAMLCostsMillisecondsAndNoMemory() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let ci = try await api.token("ci-staging", [.submitter], env: ["staging"])
        let nobody = try await api.token("reader", [.auditor])
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 { bomb += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n" }
        bomb += "pipeline: p\nenvironment: staging\nsteps: [{ id: a, kind: noop, with: { bomb: *a9 } }]\n"
        let deep = "pipeline: " + String(repeating: "[", count: 500_000)
        let before = try Self.residentKB(dispatcher.pid)
        for (text, expected) in [(bomb, "more than 100000 values"), (deep, "nesting deeper than 64 levels")] {
            // What the text costs the dispatcher is its CPU time, which a loaded machine does not stretch
            // the way it stretches the wall clock of a request.
            let cpuBefore = try Self.cpuMilliseconds(dispatcher.pid)
            let (status, json) = try await api.submit(text, token: ci)
            #expect(status == 400)
            #expect(json.error.contains(expected), "\(json.error)")
            let spent = try Self.cpuMilliseconds(dispatcher.pid) - cpuBefore
            #expect(spent < 1_000, "the dispatcher spent \(spent) ms of CPU refusing \(expected)")
            // A token that may submit nowhere is refused before the text is parsed at all.
            let refused = try await api.submit(text, token: nobody)
            #expect(refused.status == 403)
        }
        let after = try Self.residentKB(dispatcher.pid)
        #expect(after - before < 64 * 1024, "resident \(before) kB → \(after) kB")
        #expect(dispatcher.isRunning)
        _ = dispatcher
    }

    @Test func environmentsAreShownAndEveryApplyIsRecorded() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let reader = try await api.token("auditor", [.auditor])
        let file = try api.file("production.yml", Self.productionPolicy)
        // The application's role may read policies but never write them.
        await #expect(throws: PostgresError.self) {
            _ = try await EnvironmentStore().apply(name: "production", definition: "x", sha256: "x", actor: "app", namespace: env.namespace, on: env.db())
        }
        let cli = { (arguments: [String], url: String) async throws -> (Int32, String) in
            let result = try await api.cli(arguments + ["--namespace", env.namespace, "--database-url", url], token: "")
            return (result.status, result.out + result.err)
        }
        let (status, out) = try await cli(["environment", "apply", file], env.adminURLText)
        #expect(status == 0, "\(out)")
        #expect(out.contains("environment production: policy created by "))
        #expect(try await cli(["environment", "apply", file], env.adminURLText).1.contains("environment production: unchanged"))
        let bad = try api.file("bad.yml", "environment: production\nprotection: { aprovals: {} }\n")
        let refused = try await cli(["environment", "apply", bad], env.adminURLText)
        #expect(refused.0 == 1)
        #expect(refused.1.contains("bad.yml:2:15: unknown key 'aprovals' in protection; did you mean 'approvals'?"))
        // With the application's URL (what a dispatcher or worker holds) the apply is refused by Postgres.
        let changed = try api.file("changed.yml", Self.productionPolicy + "\ndescription: changed\n")
        let denied = try await cli(["environment", "apply", changed], env.databaseURLText)
        #expect(denied.0 != 0)
        #expect(denied.1.contains("permission denied"), "\(denied.1)")

        let show = try await cli(["environment", "show", "production"], env.databaseURLText)
        #expect(show.1.contains("approvals:    1 of alice, bob, not the submitter, within 4h; before every step"))
        #expect(try await cli(["environment", "show", "staging"], env.databaseURLText).1.contains("environment staging has no policy"))
        let history = try await EnvironmentStore().history("production", namespace: env.namespace, on: env.db())
        #expect(history.count == 1 && history[0].before == nil && history[0].after == Self.productionPolicy)
        // Token changes are recorded too, with the account that made them.
        let created = try await cli(["token", "create", "--name", "release-bot", "--role", "auditor"], env.adminURLText)
        #expect(created.0 == 0, "\(created.1)")
        #expect(try await cli(["token", "revoke", "release-bot"], env.adminURLText).0 == 0)
        let actions = try await ActionLog().recent(namespace: env.namespace, limit: 10, on: env.db())
        #expect(actions.contains { $0.action == "environment.apply" && $0.environment == "production" && $0.accepted })
        #expect(actions.contains { $0.action == "token.create" && $0.actor.contains("@") && $0.reason == "token release-bot: auditor" })
        #expect(actions.contains { $0.action == "token.revoke" && $0.actor.contains("@") && $0.reason == "token release-bot" })

        let listed = try await api.call(.get, "/v1/environments", token: reader)
        #expect(listed.status == 200)
        guard case .array(let items)? = listed.json["environments"] else { throw Failure("no environments: \(listed.json)") }
        #expect(items.count == 1)
        let one = try await api.call(.get, "/v1/environments/production", token: reader)
        guard case .object(let policy)? = one.json["policy"], case .object(let protection)? = policy["protection"] else {
            throw Failure("no policy: \(one.json)")
        }
        #expect(protection["confirm"] == .string("DEPLOY TO PRODUCTION"))
        let none = try await api.call(.get, "/v1/environments/staging", token: reader)
        #expect(none.status == 200 && none.json["policy"] == nil)
        _ = dispatcher
    }

    @Test func aBuildStepNeverSeesTheWorkersCredentials() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1", kind: "build")
        let ci = try await api.token("ci-staging", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: p
            environment: staging
            steps: [{ id: b, kind: build, with: { run: "cat /proc/$PPID/environ", inherit_env: [GANTRY_DATABASE_URL] } }]
            """
        let (status, json) = try await api.submit(pipeline, token: ci)
        #expect(status == 422)
        #expect(json.error == "step 'b': with.inherit_env GANTRY_DATABASE_URL: the worker's own credentials never reach a step; the environment has no policy that lists it")
        _ = (dispatcher, worker)
    }

    @Test func stepsGoOnlyToTheirEnvironmentsPoolAndOtherEnvironmentsSecretsAreRefused() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        try await apply("""
            environment: production
            exclusive_secrets: [PROD_TOKEN]
            pool: production
            """, env)
        // Started after the policy: a default-pool worker, which must never take production's steps.
        let general = try env.worker("general")
        try await env.eventually("the general worker to start") { general.log.contains("worker started") }
        let ci = try await api.token("ci", [.submitter], env: ["production", "staging"])
        let production = """
            pipeline: production
            environment: production
            steps: [{ id: a, kind: noop }]
            """
        let run = try await api.submit(production, token: ci).json.id
        try await api.wait(run, token: ci, for: "the step to be queued") { $0.steps.first?.status == "queued" }
        // The default worker has been polling its queue all along; the step is in the pool's.
        let queue = try await env.redis().command(["XLEN", env.keys.stream("noop@production")])
        #expect(queue == .integer(1))
        #expect(try await api.run(run, token: ci).steps.first?.status == "queued")
        let pooled = try env.worker("prod-1", extra: ["--pool", "production"])
        let done = try await api.wait(run, token: ci)
        #expect(done.status == "succeeded")
        #expect(done.steps.first?.attempts.first?.worker == "prod-1")

        // A staging run naming production's secret is refused at submit.
        let sneaky = """
            pipeline: p
            environment: staging
            steps: [{ id: n, kind: notify, with: { channel: slack, webhook_url: "${{ secrets.PROD_TOKEN }}" } }]
            """
        let (status, json) = try await api.submit(sneaky, token: ci)
        #expect(status == 422)
        #expect(json.error == "step 'n': secret PROD_TOKEN belongs to environment production (its policy's exclusive_secrets); this environment's policy must list it there too")
        _ = (dispatcher, pooled)
    }

    @Test func aRunningWorkerLearnsThatASecretWasTakenFromItsPool() async throws {
        let env = try await TestEnvironment.make()
        let dispatcher = try env.dispatcher()
        let worker = try env.worker("general", extra: ["--policy-refresh", "1s"], environment: ["GANTRY_SECRET_DEPLOY_KEY": "k3y-\(env.namespace)"])
        // Jobs put straight into the default pool's queue (as a holder of the Redis URL could):
        // only the worker's own scope stands between them and the secret.
        let inputs = #"{"log": "key ${{ secrets.DEPLOY_KEY }}"}"#
        let before = try await env.enqueue(count: 1, with: inputs, maxAttempts: 1)
        #expect(try await env.waitForRuns(before).map(\.status) == ["succeeded"])
        try await apply("""
            environment: production
            exclusive_secrets: [DEPLOY_KEY]
            pool: production
            """, env)
        try await env.eventually("the worker to read the new policies") {
            worker.log.contains("the environments' policies changed: this pool's steps may now name the secrets any (never: DEPLOY_KEY)")
        }
        let after = try await env.enqueue(count: 1, with: inputs, maxAttempts: 1)
        #expect(try await env.waitForRuns(after).map(\.status) == ["failed"])
        let error = try await env.attempts(after[0]).first?.error ?? ""
        #expect(error.hasPrefix("secret DEPLOY_KEY is not available on worker general"), "\(error)")
        #expect(!worker.log.contains("k3y-\(env.namespace)"))
        _ = dispatcher
    }

    @Test func aFloodOfUnauthenticatedRequestsIsCountedNotWrittenOneRowEach() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let started = ContinuousClock.now
        for index in 0..<60 {
            _ = try await api.call(.get, "/v1/runs", token: index.isMultiple(of: 2) ? nil : "gty_made-up")
        }
        // The tally is written every 5 s (APIConfiguration.refusalFlushInterval): one row per kind
        // of refusal for each flush the requests spanned, however slowly a loaded machine sent them.
        let flushes = Int((ContinuousClock.now - started) / .seconds(5)) + 2
        func logged() async throws -> [ActionLog.Entry] {
            try await ActionLog().recent(namespace: env.namespace, limit: 100, on: env.db()).filter { $0.actor.hasPrefix("(") }
        }
        func total(_ entries: [ActionLog.Entry]) -> Int {
            entries.reduce(0) { sum, entry in sum + (Int(entry.reason?.split(separator: " ").first ?? "") ?? 1) }
        }
        try await env.eventually("all 60 refusals counted in the actions log") { try await total(logged()) == 60 }
        let rows = try await logged()
        #expect(rows.count <= 2 * flushes, "\(rows.count) rows for 60 refused requests over \(flushes) flushes")
        #expect(rows.contains { $0.actor == "(no token)" && $0.reason?.hasSuffix("requests: no bearer token") == true })
        _ = dispatcher
    }

    @Test func aTokenPastItsRateIsToldToWaitAndOthersAreNot() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env, extra: ["--api-rate", "5", "--api-idle-timeout", "2s"])
        let busy = try await api.token("busy", [.auditor])
        let calm = try await api.token("calm", [.auditor])
        // At once, so that a loaded machine answering slowly cannot refill the bucket between them.
        let limited = try await withThrowingTaskGroup(of: HTTPResponse.self) { group -> HTTPResponse? in
            for _ in 0..<40 {
                group.addTask {
                    var request = HTTPRequest(url: api.base + "/v1/runs", timeout: .seconds(20))
                    request.headers.append(("Authorization", "Bearer \(busy)"))
                    return try await api.http.send(request)
                }
            }
            var found: HTTPResponse?
            for try await response in group where response.status == 429 && found == nil { found = response }
            return found
        }
        let refused = try #require(limited, "40 requests at once never met the limit of 5/s (burst 10)")
        let retryAfter = refused.headers.first { $0.name.lowercased() == "retry-after" }?.value
        #expect(Int(retryAfter ?? "") ?? 0 >= 1)
        #expect(JSONValue.parseObject(refused.text)?["error"]?.stringValue?.hasPrefix("this token sent more than 5 requests a second") == true)
        #expect(try await api.call(.get, "/v1/runs", token: calm).status == 200)
        // A connection that sends nothing is closed after the idle timeout.
        let socket = try LoopbackSocket.connect(port: api.port)
        try await env.eventually("the idle connection to be closed", timeout: .seconds(10)) { socket.isClosedByPeer() }
        _ = dispatcher
    }

    @Test func aTokenHoldsABoundedNumberOfStreamsAndRevokingItClosesThem() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env, extra: ["--api-streams-per-token", "2", "--api-stream-recheck", "500ms"])
        let ci = try await api.token("watcher", [.submitter], env: ["staging"])
        // A run that waits (for an approval nobody gives): its event stream stays open.
        let waiting = """
            pipeline: p
            environment: staging
            steps: [{ id: gate, kind: approval, with: { timeout: 1h } }]
            """
        let run = try await api.submit(waiting, token: ci).json.id
        let opened = OpenedStreams()
        let url = api.base + "/v1/runs/\(run)/events"
        func stream() -> Task<Int, any Error> {
            Task { [opened] in
                var request = HTTPRequest(url: url, timeout: .seconds(60))
                request.headers.append(("Authorization", "Bearer \(ci)"))
                let mark = OpenedStreams.Mark(opened)
                return try await HTTPClient(name: "stream").stream(request) { status, _ in
                    if status == 200 { mark.once() }
                    return true
                }.status
            }
        }
        let first = stream(), second = stream()
        // Both hold their place once the server has sent them the run; a third is refused.
        try await env.eventually("both streams to open") { opened.count == 2 }
        var request = HTTPRequest(url: api.base + "/v1/runs/\(run)/events", timeout: .seconds(5))
        request.headers.append(("Authorization", "Bearer \(ci)"))
        let third = try await api.http.send(request)
        #expect(third.status == 429)
        #expect(JSONValue.parseObject(third.text)?["error"]?.stringValue == "this token already holds 2 open streams (events, followed logs); close one first")
        _ = try await TokenStore().revoke(name: "watcher", namespace: env.namespace, on: env.adminDB())
        // Revoked: both open streams end by themselves (each rechecks its token).
        #expect(try await first.value == 200)
        #expect(try await second.value == 200)
        _ = dispatcher
    }

    /// User plus system CPU time of a process, from /proc/PID/stat (fields 14 and 15, in clock ticks).
    static func cpuMilliseconds(_ pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // The command name may hold spaces; the fields after it are counted from its closing parenthesis.
        guard let close = stat.lastIndex(of: ")") else { throw Failure("no fields in /proc/\(pid)/stat") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { throw Failure("no CPU times for \(pid)") }
        return (user + system) * 1000 / sysconf(Int32(_SC_CLK_TCK))
    }

    static func residentKB(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) else { throw Failure("no VmRSS for \(pid)") }
        return kb
    }
}

/// How many event streams of a test have received their first bytes.
final class OpenedStreams: Sendable {
    private let value = Mutex(0)
    var count: Int { value.withLock { $0 } }

    /// Counts one stream once, however many chunks it receives.
    final class Mark: Sendable {
        private let streams: OpenedStreams
        private let done = Mutex(false)
        init(_ streams: OpenedStreams) { self.streams = streams }
        func once() {
            let first = done.withLock { done -> Bool in
                defer { done = true }
                return !done
            }
            if first { streams.value.withLock { $0 += 1 } }
        }
    }
}
