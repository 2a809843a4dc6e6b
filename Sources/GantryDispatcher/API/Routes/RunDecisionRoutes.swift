import GantryAPI
import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime

/// `POST /v1/runs/{id}/approve|reject|cancel|retry`: run events applied in one transaction,
/// their effects carried out, and each accepted or refused decision logged with the token's name.
struct RunDecisionRoutes: Sendable {
    let namespace: String
    /// Connections for changes: the decision's transaction.
    let pool: PostgresPool
    let redis: RedisConnection
    let effector: Effector
    let audit: ActionAudit
    let runs: RunReader
    let store = RunStore()

    func approve(_ input: Operations.ApproveRun.Input) async throws -> Operations.ApproveRun.Output {
        guard case .json(let body) = input.body else { throw APIError.badRequest("the request body is not the JSON object this endpoint takes") }
        return .ok(.init(body: .json(try await decide(input.path.id, body, approve: true))))
    }

    func reject(_ input: Operations.RejectRun.Input) async throws -> Operations.RejectRun.Output {
        guard case .json(let body) = input.body else { throw APIError.badRequest("the request body is not the JSON object this endpoint takes") }
        return .ok(.init(body: .json(try await decide(input.path.id, body, approve: false))))
    }

    /// Approves or rejects an approval gate: the grant must allow approving in the run's environment.
    private func decide(_ id: String, _ body: Components.Schemas.Decision, approve: Bool) async throws -> Components.Schemas.Run {
        let action = approve ? "approve" : "reject"
        let grant = try APICaller.grant()
        let detail = try await runs.readable(id, grant: grant)
        try await audit.authorize(grant, .approve, environment: detail.run.environment, runID: id, log: action)
        let (result, effects) = try await pool.withConnection({ db in try await store.decide(
            run: id, step: body.step, approve: approve, by: grant.name, comment: body.comment, namespace: namespace,
            nowMs: WallClock.nowMs(), on: db
        ) })
        await effector.carryOut(effects, on: redis)
        return try await respond(result, action: action, grant: grant, runID: id, environment: detail.run.environment)
    }

    func cancel(_ input: Operations.CancelRun.Input) async throws -> Operations.CancelRun.Output {
        let id = input.path.id
        let grant = try APICaller.grant()
        let detail = try await runs.readable(id, grant: grant)
        try await audit.authorize(grant, .cancel, environment: detail.run.environment, runID: id)
        let (result, effects) = try await pool.withConnection({ db in try await store.cancel(run: id, namespace: namespace, nowMs: WallClock.nowMs(), on: db) })
        await effector.carryOut(effects, on: redis)
        return .ok(.init(body: .json(try await respond(result, action: "cancel", grant: grant, runID: id, environment: detail.run.environment))))
    }

    /// Retries the run's failed steps, or the one named.
    func retry(_ input: Operations.RetryRun.Input) async throws -> Operations.RetryRun.Output {
        let id = input.path.id
        let grant = try APICaller.grant()
        var step: String?
        if case .json(let body)? = input.body { step = body.step }
        let detail = try await runs.readable(id, grant: grant)
        try await audit.authorize(grant, .retry, environment: detail.run.environment, runID: id)
        let (result, effects) = try await pool.withConnection({ db in try await store.retry(run: id, step: step, namespace: namespace, nowMs: WallClock.nowMs(), on: db) })
        await effector.carryOut(effects, on: redis)
        return .ok(.init(body: .json(try await respond(result, action: "retry", grant: grant, runID: id, environment: detail.run.environment))))
    }

    /// The run after an accepted decision, or the refusal as its status; logged either way.
    private func respond(
        _ result: Result<RunRecord, RunRefusal>, action: String, grant: Grant, runID: String, environment: String?
    ) async throws -> Components.Schemas.Run {
        switch result {
        case .success:
            try await audit.record(actor: grant.name, action, runID: runID, environment: environment, accepted: true, reason: nil)
            return Components.Schemas.Run(try await runs.view(runID))
        case .failure(let refusal):
            try? await audit.record(actor: grant.name, action, runID: runID, environment: environment, accepted: false, reason: refusal.reason)
            switch refusal.code {
            case .notFound: throw APIError.notFound(refusal.reason)
            case .conflict: throw APIError.conflict(refusal.reason)
            case .forbidden: throw APIError.forbidden(refusal.reason)
            case .gate: throw APIError.gate(refusal.reason)
            }
        }
    }
}
