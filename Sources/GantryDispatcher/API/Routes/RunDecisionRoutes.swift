import GantryAPI
import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Hummingbird

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
    let maxBodyBytes: Int
    let store = RunStore()

    func addRoutes(to group: RouterGroup<GantryRequestContext>, authenticator: Authenticator) {
        group.authenticated("approve", by: authenticator).post(":id/approve") { request, context in
            try await decide(request, context: context, approve: true)
        }
        group.authenticated("reject", by: authenticator).post(":id/reject") { request, context in
            try await decide(request, context: context, approve: false)
        }
        group.authenticated("cancel", by: authenticator).post(":id/cancel", use: cancel)
        group.authenticated("retry", by: authenticator).post(":id/retry", use: retry)
    }

    /// Approves or rejects an approval gate: the grant must allow approving in the run's environment.
    func decide(_ request: Request, context: GantryRequestContext, approve: Bool) async throws -> Response {
        let id = try context.parameters.require("id")
        let action = approve ? "approve" : "reject"
        let grant = try context.requireGrant()
        let body = try await JSONRequestBody.decode(Components.Schemas.Decision.self, from: request, limit: maxBodyBytes)
        let detail = try await runs.readable(id, grant: grant)
        try await audit.authorize(grant, .approve, environment: detail.run.environment, runID: id, log: action)
        let (result, effects) = try await pool.withConnection({ db in try await store.decide(
            run: id, step: body.step, approve: approve, by: grant.name, comment: body.comment, namespace: namespace,
            nowMs: WallClock.nowMs(), on: db
        ) })
        await effector.carryOut(effects, on: redis)
        return try await respond(result, action: action, grant: grant, runID: id, environment: detail.run.environment)
    }

    func cancel(_ request: Request, context: GantryRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let grant = try context.requireGrant()
        let detail = try await runs.readable(id, grant: grant)
        try await audit.authorize(grant, .cancel, environment: detail.run.environment, runID: id)
        let (result, effects) = try await pool.withConnection({ db in try await store.cancel(run: id, namespace: namespace, nowMs: WallClock.nowMs(), on: db) })
        await effector.carryOut(effects, on: redis)
        return try await respond(result, action: "cancel", grant: grant, runID: id, environment: detail.run.environment)
    }

    /// Retries the run's failed steps, or the one named.
    func retry(_ request: Request, context: GantryRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let grant = try context.requireGrant()
        let body = try await JSONRequestBody.decode(Components.Schemas.RetryRequest.self, from: request, limit: maxBodyBytes)
        let detail = try await runs.readable(id, grant: grant)
        try await audit.authorize(grant, .retry, environment: detail.run.environment, runID: id)
        let (result, effects) = try await pool.withConnection({ db in try await store.retry(run: id, step: body.step, namespace: namespace, nowMs: WallClock.nowMs(), on: db) })
        await effector.carryOut(effects, on: redis)
        return try await respond(result, action: "retry", grant: grant, runID: id, environment: detail.run.environment)
    }

    /// The run after an accepted decision, or the refusal as its status; logged either way.
    private func respond(
        _ result: Result<RunRecord, RunRefusal>, action: String, grant: Grant, runID: String, environment: String?
    ) async throws -> Response {
        switch result {
        case .success:
            try await audit.record(actor: grant.name, action, runID: runID, environment: environment, accepted: true, reason: nil)
            return try await runs.show(runID, status: .ok)
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
