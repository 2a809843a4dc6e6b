import GantryAPI
import GantryCore
import GantryPostgres
import GantryRedis
import GantryRuntime
import Logging

/// `POST /v1/runs`: a pipeline submitted for a commit. The gates run cheapest first (the token's
/// scope before the pipeline is parsed), then the environment's policy and the file together,
/// the stricter winning; every refusal past the token's scope is logged with its name.
struct RunSubmitRoutes: Sendable {
    let namespace: String
    /// Connections for changes: the submit's transaction.
    let pool: PostgresPool
    /// Connections for reads: the environments' policies.
    let reads: PostgresPool
    let redis: RedisConnection
    let effector: Effector
    let audit: ActionAudit
    let runs: RunReader
    let logger: Logger
    let store = RunStore()
    let policies = EnvironmentPolicies()

    /// 201 with the new run, or 200 with the run an idempotency key matched.
    func submit(_ input: Operations.SubmitRun.Input) async throws -> Operations.SubmitRun.Output {
        let grant = try APICaller.grant()
        guard case .json(let body) = input.body else { throw APIError.badRequest("the request body is not the JSON object this endpoint takes") }
        // Authorized before the pipeline is parsed: a token that may not submit there costs no parse.
        if let asked = body.environment {
            try await audit.authorize(grant, .submit, environment: asked, runID: nil)
        } else if !grant.maySubmitSomewhere {
            try await audit.authorize(grant, .submit, environment: nil, runID: nil)
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
        try await audit.authorize(grant, .submit, environment: environment, runID: nil)
        guard Identifiers.isCommitSHA(body.sha) else {
            throw APIError.badRequest("sha '\(body.sha.prefix(80))' is not a commit SHA: give \(Identifiers.commitSHARule)")
        }
        let refuse = { (reason: String) async throws -> Never in
            try? await audit.record(actor: grant.name, "submit", runID: nil, environment: environment, accepted: false, reason: reason)
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
        switch PipelineParam.resolve(rules.definition.params, given: body.params?.additionalProperties ?? [:]) {
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
                try? await audit.record(actor: grant.name, "submit", runID: nil, environment: environment, accepted: false, reason: refusal.reason)
                throw APIError.conflict(refusal.reason)
            }
            try await refuse(refusal.reason)
        case .success(let (run, created)):
            try await audit.record(actor: grant.name, "submit", runID: run.id, environment: environment, accepted: true,
                                   reason: created ? nil : "idempotency key \(body.idempotencyKey ?? "") matched this run")
            logger.info("run submitted", metadata: [
                "gantry.run.id": "\(run.id)", "gantry.pipeline": "\(definition.name)", "gantry.by": "\(grant.name)",
                "gantry.status": "\(run.status)",
            ])
            let view = Components.Schemas.Run(try await runs.view(run.id))
            return created ? .created(.init(body: .json(view))) : .ok(.init(body: .json(view)))
        }
    }
}
