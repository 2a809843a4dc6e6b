import GantryCore
import GantryPostgres
import GantryRedis

/// Runs as the routes read them: only in this installation's namespace, and only when the
/// token may read the run's environment. A run it may not read is, to it, a run that does not
/// exist (404, the same words): a refusal must not tell another environment's run ids apart
/// from made-up ones.
struct RunReader: Sendable {
    let namespace: String
    /// Connections for reads only: a read never queues behind a submit's transaction.
    let reads: PostgresPool
    /// The live workers, for steps that run and queues nobody takes.
    let fleets: FleetCache
    let audit: ActionAudit
    let store = RunStore()

    /// The run, when it exists and the grant may read it; otherwise 404.
    func readable(_ id: String, grant: Grant) async throws -> RunDetail {
        guard let detail = try await reads.withConnection({ db in try await store.detail(run: id, namespace: namespace, on: db) }) else {
            throw APIError.notFound("no run \(id.prefix(64)) in this installation")
        }
        try await authorizeRead(grant, detail)
        return detail
    }

    /// Refuses a run the grant may not read as if it did not exist (404), and logs the refusal.
    func authorizeRead(_ grant: Grant, _ detail: RunDetail) async throws {
        if case .failure(let denied) = grant.decide(.read, environment: detail.run.environment) {
            try? await audit.record(actor: grant.name, "read", runID: detail.run.id, environment: detail.run.environment, accepted: false, reason: denied.reason)
            throw APIError.notFound("no run \(detail.run.id.prefix(64)) in this installation")
        }
    }

    /// The fleet, when the run has a queued step to place (a finished run needs none).
    func fleet(for detail: RunDetail) async -> FleetSnapshot {
        detail.steps.contains { $0.state.status == .queued } ? await fleets.current() : .unknown
    }

    /// The run's view, for the response to a change the caller already authorized.
    func view(_ id: String) async throws -> RunView {
        guard let detail = try await reads.withConnection({ db in try await store.detail(run: id, namespace: namespace, on: db) }) else {
            throw APIError.notFound("no run \(id)")
        }
        return RunViews.view(detail, fleet: await fleet(for: detail))
    }
}
