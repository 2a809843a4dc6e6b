import Foundation
import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Hummingbird
import Logging

/// The handlers of the runs API. Every handler authenticates the bearer token,
/// asks `Grant` whether the action is allowed on the run's environment, and
/// records every change it makes or refuses in the actions log with the token's name.
struct RunAPI: Sendable {
    let namespace: String
    /// Connections for changes (submit, decisions, cancel, retry, the actions log).
    let pool: PostgresPool
    /// Connections for reads and token checks only: a read never queues behind a submit's transaction.
    let reads: PostgresPool
    let redis: RedisConnection
    let effector: Effector
    /// Wakes event streams when their run changes.
    let changes: RunChangeFeed
    /// Wakes followed logs when they grow, and lends them a connection to read.
    let logs: LogTailFeed
    /// The live workers, for steps that run and queues nobody takes.
    let fleets: FleetCache
    let logger: Logger
    let maxBodyBytes: Int
    let store = RunStore()
    let policies = EnvironmentPolicies()
    /// Unauthenticated refusals, written as counts (`flushRefusals`), not one row each.
    let refusals = RefusalTally()
    /// Each token's request budget.
    let limiter: TokenRateLimiter
    /// Each token's open streams, and their recheck of its revocation.
    let streams: StreamLimits
    let tokens = TokenStore()
    let actions = ActionLog()

    // MARK: Requests

    struct SubmitRequest: Decodable {
        var pipeline: String
        var pipelineFile: String?
        var environment: String?
        var sha: String
        var ref: String?
        var confirm: String?
        var changedFiles: [String]?
        var params: [String: String]?
        var idempotencyKey: String?

        enum CodingKeys: String, CodingKey {
            case pipeline, pipelineFile = "pipeline_file", environment, sha, ref, confirm
            case changedFiles = "changed_files", params, idempotencyKey = "idempotency_key"
        }
    }

    struct DecisionRequest: Decodable {
        var step: String
        var comment: String?
    }

    struct RetryRequest: Decodable {
        var step: String?
    }

    // MARK: Authentication

    /// The grant of the request's bearer token; a missing or unknown token is refused (401) and logged.
    func authenticate(_ request: Request, action: String) async throws -> Grant {
        try await authenticateWithHash(request, action: action).grant
    }

    /// The grant, and the token's hash (what streams are counted and rechecked by).
    func authenticateWithHash(_ request: Request, action: String) async throws -> (grant: Grant, hash: String) {
        let hash = try await bearerHash(request, action: action)
        guard let grant = try await reads.withConnection({ db in try await tokens.grant(hash: hash, namespace: namespace, on: db) }) else {
            throw await unknownToken(action)
        }
        limiter.register(hash)
        return (grant, hash)
    }

    /// The hash of the request's bearer token; no token is refused (401) and logged.
    private func bearerHash(_ request: Request, action: String) async throws -> String {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), header.count > 7 else {
            refusals.note(actor: "(no token)", action: action, reason: "no bearer token")
            throw APIError.unauthorized("no token: send Authorization: Bearer <token> (gantry token create makes one; the CLI reads GANTRY_TOKEN)")
        }
        let hash = APITokens.hash(String(header.dropFirst(7)))
        if let wait = limiter.admit(hash) {
            throw APIError(status: .tooManyRequests,
                message: "this token sent more than \(Int(limiter.rate)) requests a second; wait \(wait)s (Retry-After) and slow down", retryAfter: wait)
        }
        return hash
    }

    /// Logs the refusal of a token that is unknown or revoked and returns the 401 to throw.
    private func unknownToken(_ action: String) async -> APIError {
        refusals.note(actor: "(unknown token)", action: action, reason: "unknown or revoked token")
        return APIError.unauthorized("the token is unknown or revoked; ask an admin for a new one (gantry token create)")
    }

    /// Refuses (403, logged) unless the grant allows the action on this environment.
    func authorize(_ grant: Grant, _ action: APIAction, environment: String?, runID: String?, log name: String? = nil) async throws {
        if case .failure(let denied) = grant.decide(action, environment: environment) {
            try? await record(actor: grant.name, name ?? action.rawValue, runID: runID, environment: environment, accepted: false, reason: denied.reason)
            throw APIError.forbidden(denied.reason)
        }
    }

    /// Writes the unauthenticated refusals counted since the last call, one row per kind:
    /// "12 requests: no bearer token".
    func flushRefusals(_ counts: [(RefusalTally.Key, Int)]) async {
        for (key, count) in counts {
            try? await record(actor: key.actor, key.action, runID: nil, environment: nil, accepted: false,
                              reason: count == 1 ? key.reason : "\(count) requests: \(key.reason)")
        }
    }

    private func record(actor: String, _ action: String, runID: String?, environment: String?, accepted: Bool, reason: String?) async throws {
        try await pool.withConnection({ db in try await actions.record(
            namespace: namespace, actor: actor, action: action, runID: runID, environment: environment,
            accepted: accepted, reason: reason, on: db
        ) })
    }

    private func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: maxBodyBytes)
        } catch {
            throw APIError(status: .contentTooLarge, message: "the request body is larger than \(maxBodyBytes) bytes")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch let DecodingError.keyNotFound(key, _) {
            throw APIError.badRequest("the request body has no field '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context) {
            throw APIError.badRequest("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch {
            throw APIError.badRequest("the request body is not the JSON object this endpoint takes")
        }
    }

    // MARK: Runs

    func submit(_ request: Request) async throws -> Response {
        let grant = try await authenticate(request, action: "submit")
        let body = try await decode(SubmitRequest.self, from: request)
        // Authorized before the pipeline is parsed: a token that may not submit there costs no parse.
        if let asked = body.environment {
            try await authorize(grant, .submit, environment: asked, runID: nil)
        } else if !grant.maySubmitSomewhere {
            try await authorize(grant, .submit, environment: nil, runID: nil)
        }
        if let files = body.changedFiles {
            guard files.count <= 50_000, files.allSatisfy({ $0.utf8.count <= 1_024 }) else {
                throw APIError.badRequest("changed_files: at most 50000 paths of at most 1024 bytes each; without changed_files, when.paths filters skip nothing")
            }
        }
        let file = body.pipelineFile.map { String($0.prefix(200)) } ?? "pipeline.yml"
        let (parsed, diagnostics) = PipelineParser().parse(body.pipeline, file: file)
        guard let definition = parsed else {
            let lines = diagnostics.map(\.description)
            throw APIError.badRequest(
                (lines.first ?? "\(file): not a valid pipeline") + (lines.count > 1 ? " (and \(lines.count - 1) more)" : ""),
                details: Array(lines.prefix(100))
            )
        }
        let environment: String?
        switch (definition.environment, body.environment) {
        case (let declared?, let asked?) where declared != asked:
            throw APIError.badRequest("\(file): pipeline \(definition.name) deploys to \(declared); --env \(asked.prefix(64)) does not match it")
        case (let declared?, _): environment = declared
        case (nil, let asked): environment = asked
        }
        try await authorize(grant, .submit, environment: environment, runID: nil)
        guard Identifiers.isCommitSHA(body.sha) else {
            throw APIError.badRequest("sha '\(body.sha.prefix(80))' is not a commit SHA: give \(Identifiers.commitSHARule)")
        }
        let refuse = { (reason: String) async throws -> Never in
            try? await self.record(actor: grant.name, "submit", runID: nil, environment: environment, accepted: false, reason: reason)
            throw APIError.gate(reason)
        }
        // The environment's policy and the file, the stricter winning: one pure decision.
        let (policy, others) = try await reads.withConnection { db in try await policies.load(for: environment, namespace: namespace, on: db) }
        let rules: EnvironmentRules.Effective
        switch EnvironmentRules.evaluate(
            definition, policy: policy,
            request: .init(environment: environment, ref: body.ref, confirm: body.confirm, submitter: grant.name), others: others
        ) {
        case .success(let effective): rules = effective
        case .failure(let refusal): try await refuse(refusal.reason)
        }
        // Declared parameters only, each checked, defaults filled in: what the run's expressions read.
        let params: [String: String]
        switch PipelineParam.resolve(rules.definition.params, given: body.params ?? [:]) {
        case .success(let values): params = values
        case .failure(let problem): try await refuse(problem.description)
        }
        let plan = PipelinePlan.make(rules.definition, changedFiles: body.changedFiles, params: params, ref: body.ref, environment: environment)
        var skips: [String: String] = [:]
        for step in plan.levels.joined() + plan.onFailure + plan.finally {
            if let reason = step.skipReason { skips[step.id] = reason }
        }
        var random = SystemRandomNumberGenerator()
        let submission = PipelineSubmission(
            runID: Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random), namespace: namespace,
            definition: rules.definition, definitionText: body.pipeline,
            definitionSHA256: APITokens.sha256Hex(body.pipeline),
            environment: environment, sha: body.sha.lowercased(), ref: body.ref, params: params, submitter: grant.name,
            idempotencyKey: body.idempotencyKey, skips: skips, promoteFrom: rules.promoteFrom,
            concurrencyGroup: rules.concurrencyGroup, pool: rules.pool
        )
        let (result, effects) = try await pool.withConnection({ db in try await store.submit(submission, nowMs: WallClock.nowMs(), on: db) })
        await effector.carryOut(effects, on: redis)
        switch result {
        case .failure(let refusal):
            if refusal.code == .conflict {
                try? await record(actor: grant.name, "submit", runID: nil, environment: environment, accepted: false, reason: refusal.reason)
                throw APIError.conflict(refusal.reason)
            }
            try await refuse(refusal.reason)
        case .success(let (run, created)):
            try await record(actor: grant.name, "submit", runID: run.id, environment: environment, accepted: true,
                             reason: created ? nil : "idempotency key \(body.idempotencyKey ?? "") matched this run")
            logger.info("run submitted", metadata: [
                "gantry.run.id": "\(run.id)", "gantry.pipeline": "\(definition.name)", "gantry.by": "\(grant.name)",
                "gantry.status": "\(run.status)",
            ])
            return try await show(run.id, status: created ? .created : .ok)
        }
    }

    func list(_ request: Request) async throws -> Response {
        let grant = try await authenticate(request, action: "list")
        let query = request.uri.queryParameters
        let environment = query["env"].map(String.init)
        let status = query["status"].map(String.init)
        if let status, !["waiting", "running", "succeeded", "failed", "canceled"].contains(status) {
            throw APIError.badRequest("status '\(status)' is not one of waiting, running, succeeded, failed, canceled")
        }
        let limit = query["limit"].flatMap { Int(String($0)) } ?? 50
        guard (1...1_000).contains(limit) else { throw APIError.badRequest("limit must be between 1 and 1000") }
        if let environment { try await authorize(grant, .read, environment: environment, runID: nil, log: "list") }
        if let awaiting = query["awaiting_approval"] {
            guard awaiting == "1" || awaiting == "true" else { throw APIError.badRequest("awaiting_approval takes 1 or true") }
            return try await awaitingApproval(grant, environment: environment, limit: limit)
        }
        let runs = try await reads.withConnection({ db in try await store.list(
            namespace: namespace, environments: grant.readableEnvironments, environment: environment, status: status,
            limit: limit, on: db
        ) })
        // A waiting run says what it waits behind: the run before it in its group.
        var views: [RunView] = []
        for run in runs {
            let behind = try await reads.withConnection({ db in try await store.behind(run, on: db) })
            views.append(RunViews.summary(run, behind: behind))
        }
        return APIResponses.json(.ok, text: "{\"runs\":[" + views.map(\.jsonText).joined(separator: ",") + "]}")
    }

    /// Runs with a gate this token may decide now: its role and environments allow approving
    /// there, the gate's approvers name it (or name nobody), it did not submit the run where the
    /// gate says `distinct_from_submitter`, and it has not approved already. Each run says which gate.
    private func awaitingApproval(_ grant: Grant, environment: String?, limit: Int) async throws -> Response {
        let gates = try await reads.withConnection({ db in try await store.openGates(
            namespace: namespace, environments: environment.map { [$0] } ?? grant.readableEnvironments, limit: 1_000, on: db
        ) })
        var views: [RunView] = []
        var seen: Set<String> = []
        for gate in gates where !seen.contains(gate.run.id) {
            guard case .success = grant.decide(.approve, environment: gate.run.environment),
                  ApprovalRule(inputs: gate.inputs).refusal(approver: grant.name, submitter: gate.run.submitter, step: gate.stepID) == nil,
                  !gate.approvers.contains(grant.name)
            else { continue }
            seen.insert(gate.run.id)
            var view = RunViews.summary(gate.run)
            let until = gate.deadlineMs.map { " until \(RunViews.timestamp(ms: $0))" } ?? ""
            view.waitingFor = "approval of step \(gate.stepID) (\(gate.approvers.count)/\(gate.required))\(until)"
            views.append(view)
            if views.count == limit { break }
        }
        return APIResponses.json(.ok, text: "{\"runs\":[" + views.map(\.jsonText).joined(separator: ",") + "]}")
    }

    /// The most frequent request (dashboards, `submit --wait`): the token and the run
    /// are read in one round trip; nothing of the run leaves before the grant is checked.
    func get(_ request: Request, id: String) async throws -> Response {
        let hash = try await bearerHash(request, action: "read")
        let (grant, detail) = try await reads.withConnection { db in
            try await store.detail(run: id, namespace: namespace, tokenHash: hash, on: db)
        }
        guard let grant else { throw await unknownToken("read") }
        limiter.register(hash)
        guard let detail else { throw APIError.notFound("no run \(id.prefix(64)) in this installation") }
        try await authorizeRead(grant, detail)
        return APIResponses.json(.ok, text: RunViews.view(detail, fleet: await fleet(for: detail)).jsonText)
    }

    private func loadReadable(_ id: String, grant: Grant) async throws -> RunDetail {
        guard let detail = try await reads.withConnection({ db in try await store.detail(run: id, namespace: namespace, on: db) }) else {
            throw APIError.notFound("no run \(id.prefix(64)) in this installation")
        }
        try await authorizeRead(grant, detail)
        return detail
    }

    /// A run the token may not read is, to it, a run that does not exist (404, the same
    /// words): a refusal must not tell another environment's run ids apart from made-up ones.
    private func authorizeRead(_ grant: Grant, _ detail: RunDetail) async throws {
        if case .failure(let denied) = grant.decide(.read, environment: detail.run.environment) {
            try? await record(actor: grant.name, "read", runID: detail.run.id, environment: detail.run.environment, accepted: false, reason: denied.reason)
            throw APIError.notFound("no run \(detail.run.id.prefix(64)) in this installation")
        }
    }

    /// The fleet, when the run has a queued step to place (a finished run needs none).
    private func fleet(for detail: RunDetail) async -> FleetSnapshot {
        detail.steps.contains { $0.state.status == .queued } ? await fleets.current() : .unknown
    }

    private func show(_ id: String, status: HTTPResponse.Status) async throws -> Response {
        guard let detail = try await reads.withConnection({ db in try await store.detail(run: id, namespace: namespace, on: db) }) else {
            throw APIError.notFound("no run \(id)")
        }
        return APIResponses.json(status, text: RunViews.view(detail, fleet: await fleet(for: detail)).jsonText)
    }

    /// Server-sent events: the run as JSON (event `run`) each time it changes, until it ends.
    func events(_ request: Request, id: String) async throws -> Response {
        let (grant, hash) = try await authenticateWithHash(request, action: "read")
        _ = try await loadReadable(id, grant: grant)
        let place = try streams.acquire(hash)
        let store = store, namespace = namespace, reads = reads, changes = changes, fleets = fleets
        let body = ResponseBody { writer in
            defer { place.release() }
            // Subscribed before the first read: a change between a read and the wait is not missed.
            let subscription = changes.subscribe(id)
            let fallback = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: changes.fallback)
                    changes.poke(subscription)
                }
            }
            defer {
                fallback.cancel()
                changes.unsubscribe(subscription)
            }
            var news = subscription.changes.makeAsyncIterator()
            var last: RunView?
            var quietSince = ContinuousClock.now
            while !Task.isCancelled {
                guard let detail = try await reads.withConnection({ db in try await store.detail(run: id, namespace: namespace, on: db) }) else { break }
                let view = RunViews.view(detail, fleet: await fleets.current())
                if view != last {
                    try await writer.write(ByteBuffer(string: "event: run\ndata: \(view.jsonText)\n\n"))
                    last = view
                    quietSince = .now
                    if view.isFinished { break }
                } else if ContinuousClock.now - quietSince > .seconds(15) {
                    // A comment line keeps proxies from closing an idle stream.
                    try await writer.write(ByteBuffer(string: ": still running\n\n"))
                    quietSince = .now
                }
                // Until the run changes, or the fallback says to look anyway.
                guard await news.next() != nil else { break }
                // A revoked token's stream ends (checked at most every few seconds).
                guard await place.stillLive(namespace: namespace, reads: reads) else { break }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
            body: body
        )
    }

    /// A step's log as plain text: the live stream from Redis, or the excerpt the ledger
    /// kept once the stream has expired. `follow=1` keeps the response open until the attempt
    /// ends, woken by `LogTailFeed` (no connection or thread of its own).
    func logs(_ request: Request, id: String) async throws -> Response {
        let (grant, hash) = try await authenticateWithHash(request, action: "read")
        let detail = try await loadReadable(id, grant: grant)
        let query = request.uri.queryParameters
        guard let stepID = query["step"].map(String.init) else {
            throw APIError.badRequest("name the step: /v1/runs/\(id)/logs?step=ID (steps: \(detail.steps.map(\.key.stepID).joined(separator: ", ")))")
        }
        guard let step = detail.steps.first(where: { $0.key.stepID == stepID }) else {
            throw APIError.notFound("run \(id) has no step \(stepID.prefix(64))")
        }
        let attempt = query["attempt"].flatMap { Int(String($0)) } ?? step.state.attempt
        guard attempt >= 1, attempt <= step.state.attempt else {
            throw APIError.notFound("step \(stepID) has attempts 1 to \(step.state.attempt)")
        }
        let follow = query["follow"].map { $0 == "1" || $0 == "true" } ?? false
        let key = AttemptKey(step: step.key, attempt: attempt)
        let recordedAttempt = detail.attempts.first { $0.key == key && $0.status != .stale }
        let excerpt = recordedAttempt?.logTail
        let logs = logs, reads = reads, namespace = namespace
        // Only a followed log is a long-lived stream; reading a log once takes no place.
        let place = follow ? try self.streams.acquire(hash) : nil
        let body = ResponseBody { writer in
            defer { place?.release() }
            // Subscribed before the first read: a line written between a read and the wait is not missed.
            let subscription = follow ? logs.subscribe(key, from: "0") : nil
            let fallback = subscription.map { subscription in
                Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: logs.fallback)
                        logs.poke(subscription)
                    }
                }
            }
            defer {
                fallback?.cancel()
                if let subscription { logs.unsubscribe(subscription) }
            }
            var news = subscription?.news.makeAsyncIterator()
            var after = "0"
            var sawAny = false
            var ended = false
            // The worker ships its last lines (and the end marker) up to 200 ms after it recorded the outcome.
            var catchUpUntil: ContinuousClock.Instant?
            while !ended && !Task.isCancelled {
                let entries = try await logs.streams.read(key, after: after, block: nil, on: logs.reader)
                for (entryID, entry) in entries {
                    after = entryID
                    switch entry {
                    case .line(let line):
                        sawAny = true
                        try await writer.write(ByteBuffer(string: line + "\n"))
                    case .end:
                        ended = true
                    }
                }
                if ended || entries.count >= 500 { continue }
                if !follow {
                    // A finished attempt whose stream has no end yet: look again (briefly) for the rest of it.
                    guard recordedAttempt != nil, sawAny else { break }
                    let deadline = catchUpUntil ?? ContinuousClock.now + .seconds(2)
                    catchUpUntil = deadline
                    guard ContinuousClock.now < deadline else { break }
                    try await Task.sleep(for: .milliseconds(50))
                    continue
                }
                if entries.isEmpty {
                    // An attempt that logs nothing has no end marker: stop once the ledger has its outcome.
                    let recorded = try await reads.withConnection({ db in try await AttemptLedger().current([key], on: db) })
                    if recorded[key] != nil, try await logs.streams.read(key, after: after, block: nil, on: logs.reader).isEmpty { break }
                }
                // Until the log grows, or the fallback says to look anyway.
                guard await news?.next() != nil else { break }
                // A revoked token's stream ends (checked at most every few seconds).
                if let place, !(await place.stillLive(namespace: namespace, reads: reads)) { break }
            }
            if !sawAny, let excerpt, !excerpt.isEmpty {
                try await writer.write(ByteBuffer(string: excerpt + "\n"))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"], body: body)
    }

    // MARK: Decisions and control

    func decide(_ request: Request, id: String, approve: Bool) async throws -> Response {
        let action = approve ? "approve" : "reject"
        let grant = try await authenticate(request, action: action)
        let body = try await decode(DecisionRequest.self, from: request)
        let detail = try await loadReadable(id, grant: grant)
        try await authorize(grant, .approve, environment: detail.run.environment, runID: id, log: action)
        let (result, effects) = try await pool.withConnection({ db in try await store.decide(
            run: id, step: body.step, approve: approve, by: grant.name, comment: body.comment, namespace: namespace,
            nowMs: WallClock.nowMs(), on: db
        ) })
        await effector.carryOut(effects, on: redis)
        return try await respond(result, action: action, grant: grant, runID: id, environment: detail.run.environment)
    }

    func cancel(_ request: Request, id: String) async throws -> Response {
        let grant = try await authenticate(request, action: "cancel")
        let detail = try await loadReadable(id, grant: grant)
        try await authorize(grant, .cancel, environment: detail.run.environment, runID: id)
        let (result, effects) = try await pool.withConnection({ db in try await store.cancel(run: id, namespace: namespace, nowMs: WallClock.nowMs(), on: db) })
        await effector.carryOut(effects, on: redis)
        return try await respond(result, action: "cancel", grant: grant, runID: id, environment: detail.run.environment)
    }

    func retry(_ request: Request, id: String) async throws -> Response {
        let grant = try await authenticate(request, action: "retry")
        let body = try await decode(RetryRequest.self, from: request)
        let detail = try await loadReadable(id, grant: grant)
        try await authorize(grant, .retry, environment: detail.run.environment, runID: id)
        let (result, effects) = try await pool.withConnection({ db in try await store.retry(run: id, step: body.step, namespace: namespace, nowMs: WallClock.nowMs(), on: db) })
        await effector.carryOut(effects, on: redis)
        return try await respond(result, action: "retry", grant: grant, runID: id, environment: detail.run.environment)
    }

    private func respond(
        _ result: Result<RunRecord, RunRefusal>, action: String, grant: Grant, runID: String, environment: String?
    ) async throws -> Response {
        switch result {
        case .success:
            try await record(actor: grant.name, action, runID: runID, environment: environment, accepted: true, reason: nil)
            return try await show(runID, status: .ok)
        case .failure(let refusal):
            try? await record(actor: grant.name, action, runID: runID, environment: environment, accepted: false, reason: refusal.reason)
            switch refusal.code {
            case .notFound: throw APIError.notFound(refusal.reason)
            case .conflict: throw APIError.conflict(refusal.reason)
            case .forbidden: throw APIError.forbidden(refusal.reason)
            case .gate: throw APIError.gate(refusal.reason)
            }
        }
    }

    // MARK: Health

    func ready() async -> Response {
        do {
            _ = try await reads.withConnection({ db in try await db.run("SELECT 1") })
        } catch {
            return APIError.unavailable("Postgres is not reachable: \(error)").response
        }
        do {
            _ = try await redis.command(["PING"])
        } catch {
            return APIError.unavailable("Redis is not reachable: \(error)").response
        }
        return APIResponses.json(.ok, text: #"{"status":"ready"}"#)
    }
}
