import GantryCore
import GantryPostgres
import Hummingbird

/// `GET /v1/runs` (the runs a token may read, or the gates it may decide now) and
/// `GET /v1/runs/{id}` (one run, with its steps and attempts).
struct RunQueryRoutes: Sendable {
    let namespace: String
    /// Connections for reads and token checks only.
    let reads: PostgresPool
    let audit: ActionAudit
    let runs: RunReader
    let store = RunStore()

    func addRoutes(to group: RouterGroup<GantryRequestContext>, authenticator: Authenticator) {
        group.authenticated("list", by: authenticator).get(use: list)
        // The token is read with the run (`get`), not by the middleware before it.
        group.authenticated("read", by: authenticator, grant: .withRouteData).get(":id") { request, context in
            try await get(request, context: context, authenticator: authenticator)
        }
    }

    /// The runs the token may read, newest first, filtered by `env`, `status` and `limit`;
    /// with `awaiting_approval=1`, the runs with a gate it may decide now.
    func list(_ request: Request, context: GantryRequestContext) async throws -> Response {
        let grant = try context.requireGrant()
        let query = request.uri.queryParameters
        let environment = query["env"].map(String.init)
        let status = query["status"].map(String.init)
        if let status, !["waiting", "running", "succeeded", "failed", "canceled"].contains(status) {
            throw APIError.badRequest("status '\(status)' is not one of waiting, running, succeeded, failed, canceled")
        }
        let limit = query["limit"].flatMap { Int(String($0)) } ?? 50
        guard (1...1_000).contains(limit) else { throw APIError.badRequest("limit must be between 1 and 1000") }
        if let environment { try await audit.authorize(grant, .read, environment: environment, runID: nil, log: "list") }
        if let awaiting = query["awaiting_approval"] {
            guard awaiting == "1" || awaiting == "true" else { throw APIError.badRequest("awaiting_approval takes 1 or true") }
            return try await awaitingApproval(grant, environment: environment, limit: limit)
        }
        let found = try await reads.withConnection({ db in try await store.list(
            namespace: namespace, environments: grant.readableEnvironments, environment: environment, status: status,
            limit: limit, on: db
        ) })
        // A waiting run says what it waits behind: the run before it in its group.
        var views: [RunView] = []
        for run in found {
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
    func get(_ request: Request, context: GantryRequestContext, authenticator: Authenticator) async throws -> Response {
        let id = try context.parameters.require("id")
        let hash = try context.requireTokenHash()
        let (found, detail) = try await reads.withConnection { db in
            try await store.detail(run: id, namespace: namespace, tokenHash: hash, on: db)
        }
        let grant = try authenticator.accept(found, hash: hash, action: "read")
        guard let detail else { throw APIError.notFound("no run \(id.prefix(64)) in this installation") }
        try await runs.authorizeRead(grant, detail)
        return APIResponses.json(.ok, text: RunViews.view(detail, fleet: await runs.fleet(for: detail)).jsonText)
    }
}
