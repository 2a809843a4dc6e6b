import GantryAPI
import OpenAPIRuntime

/// The operations of openapi.yaml, as the server generated from it (GantryAPI) calls them:
/// each goes to the routes of its resource. `AuthenticationMiddleware` has bound the caller
/// (`APICaller`) of every operation that needs a token before its handler runs.
struct APIHandlers: APIProtocol {
    let health: HealthRoutes
    let submission: RunSubmitRoutes
    let queries: RunQueryRoutes
    let events: RunEventRoutes
    let logs: StepLogRoutes
    let decisions: RunDecisionRoutes
    let environments: EnvironmentRoutes
    let fleet: FleetRoutes
    let queues: QueueRoutes
    /// The process's metrics, when the command exports them.
    let metrics: (@Sendable () -> [UInt8])?

    func health(_ input: Operations.Health.Input) async throws -> Operations.Health.Output { health.health() }
    func ready(_ input: Operations.Ready.Input) async throws -> Operations.Ready.Output { try await health.ready() }
    func openAPIDocument(_ input: Operations.OpenAPIDocument.Input) async throws -> Operations.OpenAPIDocument.Output { health.document() }

    func submitRun(_ input: Operations.SubmitRun.Input) async throws -> Operations.SubmitRun.Output { try await submission.submit(input) }
    func listRuns(_ input: Operations.ListRuns.Input) async throws -> Operations.ListRuns.Output { try await queries.list(input) }
    func getRun(_ input: Operations.GetRun.Input) async throws -> Operations.GetRun.Output { try await queries.get(input) }
    func followRun(_ input: Operations.FollowRun.Input) async throws -> Operations.FollowRun.Output { try await events.events(input) }
    func getStepLog(_ input: Operations.GetStepLog.Input) async throws -> Operations.GetStepLog.Output { try await logs.log(input) }

    func approveRun(_ input: Operations.ApproveRun.Input) async throws -> Operations.ApproveRun.Output { try await decisions.approve(input) }
    func rejectRun(_ input: Operations.RejectRun.Input) async throws -> Operations.RejectRun.Output { try await decisions.reject(input) }
    func cancelRun(_ input: Operations.CancelRun.Input) async throws -> Operations.CancelRun.Output { try await decisions.cancel(input) }
    func retryRun(_ input: Operations.RetryRun.Input) async throws -> Operations.RetryRun.Output { try await decisions.retry(input) }

    func listEnvironments(_ input: Operations.ListEnvironments.Input) async throws -> Operations.ListEnvironments.Output {
        try await environments.list(input)
    }

    func metrics(_ input: Operations.Metrics.Input) async throws -> Operations.Metrics.Output {
        guard let metrics else { throw APIError.notFound("this dispatcher exports no metrics") }
        return .ok(.init(body: .plainText(HTTPBody(metrics()))))
    }

    func getFleet(_ input: Operations.GetFleet.Input) async throws -> Operations.GetFleet.Output { try await fleet.fleet(input) }
    func drainWorker(_ input: Operations.DrainWorker.Input) async throws -> Operations.DrainWorker.Output { try await fleet.drain(input) }
    func listQueues(_ input: Operations.ListQueues.Input) async throws -> Operations.ListQueues.Output { try await queues.list(input) }
    func pauseQueue(_ input: Operations.PauseQueue.Input) async throws -> Operations.PauseQueue.Output { try await queues.pause(input) }
    func resumeQueue(_ input: Operations.ResumeQueue.Input) async throws -> Operations.ResumeQueue.Output { try await queues.resume(input) }

    func getEnvironment(_ input: Operations.GetEnvironment.Input) async throws -> Operations.GetEnvironment.Output {
        try await environments.show(input)
    }
}
