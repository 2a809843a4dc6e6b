import GantryCore
import GantryPostgres
import GantryAPI

/// `GET /v1/runs` (the runs a token may read, or the gates it may decide now) and
/// `GET /v1/runs/{id}` (one run, with its steps and attempts).
struct RunQueryRoutes: Sendable {
    let namespace: String
    /// Connections for reads and token checks only.
    let reads: PostgresPool
    let audit: ActionAudit
    let runs: RunReader
    let store = RunStore()

    let authenticator: Authenticator

    /// The runs the token may read, newest first, filtered by `env`, `status` and `limit`;
    /// with `awaiting_approval=1`, the runs with a gate it may decide now.
    func list(_ input: Operations.ListRuns.Input) async throws -> Operations.ListRuns.Output {
        let grant = try APICaller.grant()
        let environment = input.query.env
        let status = input.query.status?.rawValue
        let limit = input.query.limit ?? 50
        guard (1...1_000).contains(limit) else { throw APIError.badRequest("limit must be between 1 and 1000") }
        if let environment { try await audit.authorize(grant, .read, environment: environment, runID: nil, log: "list") }
        if input.query.awaitingApproval != nil {
            return Self.listing(try await awaitingApproval(grant, environment: environment, limit: limit))
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
        return Self.listing(views)
    }

    private static func listing(_ views: [RunView]) -> Operations.ListRuns.Output {
        .ok(.init(body: .json(.init(runs: views.map(Components.Schemas.Run.init)))))
    }

    /// Runs with a gate this token may decide now: its role and environments allow approving
    /// there, the gate's approvers name it (or name nobody), it did not submit the run where the
    /// gate says `distinct_from_submitter`, and it has not approved already. Each run says which gate.
    private func awaitingApproval(_ grant: Grant, environment: String?, limit: Int) async throws -> [RunView] {
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
        return views
    }

    /// The most frequent request (dashboards, `submit --wait`): the token and the run
    /// are read in one round trip; nothing of the run leaves before the grant is checked.
    func get(_ input: Operations.GetRun.Input) async throws -> Operations.GetRun.Output {
        .ok(.init(body: .json(.init(try await view(input.path.id)))))
    }

    /// The run `GET /v1/runs/{id}` answers, for the caller `AuthenticationMiddleware` bound.
    func view(_ id: String) async throws -> RunView {
        let hash = try APICaller.current().tokenHash
        let (found, detail) = try await reads.withConnection { db in
            try await store.detail(run: id, namespace: namespace, tokenHash: hash, on: db)
        }
        let grant = try authenticator.accept(found, hash: hash, action: "read")
        guard let detail else { throw APIError.notFound("no run \(id.prefix(64)) in this installation") }
        try await runs.authorizeRead(grant, detail)
        return RunViews.view(detail, fleet: await runs.fleet(for: detail))
    }
}
