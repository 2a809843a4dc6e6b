import Foundation
import GantryAPI
import GantryCore
import HTTPTypes
import OpenAPIRuntime

/// The dispatcher's API for the run commands: the client generated from openapi.yaml
/// (GantryAPI), over libcurl, with the token on every request. A refusal or an outage throws
/// `APIFailure` with the dispatcher's one line.
struct APIClient: Sendable {
    let base: String
    private let api: Client

    init(base: String, token: String, caFile: String?) throws {
        guard let url = URL(string: base), url.host != nil else {
            throw UsageError("--url / GANTRY_URL '\(base)': give http://HOST:PORT or https://HOST:PORT")
        }
        self.base = base
        self.api = Client(
            serverURL: url,
            configuration: .init(dateTranscoder: MillisecondDates()),
            transport: CurlTransport(caFile: caFile),
            middlewares: [BearerToken(token: token), RefusalLines(base: base)]
        )
    }

    func submit(_ request: Components.Schemas.SubmitRequest) async throws -> RunView {
        try await call {
            switch try await api.submitRun(body: .json(request)) {
            case .created(let created): RunView(try created.body.json)
            case .ok(let existing): RunView(try existing.body.json)
            default: throw unexpected()
            }
        }
    }

    typealias RunStatus = Operations.ListRuns.Input.Query.StatusPayload

    func runs(environment: String?, status: RunStatus?, awaitingApproval: Bool, limit: Int) async throws -> [RunView] {
        try await call {
            let query = Operations.ListRuns.Input.Query(
                env: environment, status: status, limit: limit, awaitingApproval: awaitingApproval ? ._1 : nil
            )
            return try await api.listRuns(query: query).ok.body.json.runs.map(RunView.init)
        }
    }

    func run(_ id: String) async throws -> RunView {
        try await call { RunView(try await api.getRun(path: .init(id: id)).ok.body.json) }
    }

    func approve(_ id: String, step: String, comment: String?) async throws -> RunView {
        try await call {
            RunView(try await api.approveRun(path: .init(id: id), body: .json(.init(step: step, comment: comment))).ok.body.json)
        }
    }

    func reject(_ id: String, step: String, comment: String?) async throws -> RunView {
        try await call {
            RunView(try await api.rejectRun(path: .init(id: id), body: .json(.init(step: step, comment: comment))).ok.body.json)
        }
    }

    func cancel(_ id: String) async throws -> RunView {
        try await call { RunView(try await api.cancelRun(path: .init(id: id)).ok.body.json) }
    }

    func retry(_ id: String, step: String?) async throws -> RunView {
        try await call { RunView(try await api.retryRun(path: .init(id: id), body: .json(.init(step: step))).ok.body.json) }
    }

    /// Follows a run's server-sent events, calling `onRun` for each new state, until the run ends.
    /// A broken stream (a dispatcher restart) is picked up again; polling is the fallback.
    func follow(_ id: String, onRun: (RunView) -> Void) async throws -> RunView {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            try MillisecondDates().decode(try decoder.singleValueContainer().decode(String.self))
        }
        var failures = 0
        while true {
            var last: RunView?
            do {
                let events = try await call { try await api.followRun(path: .init(id: id)).ok.body.textEventStream }
                for try await event in events.asDecodedServerSentEventsWithJSONData(of: Components.Schemas.Run.self, decoder: decoder) {
                    guard event.event == "run", let run = event.data else { continue }
                    let view = RunView(run)
                    last = view
                    failures = 0
                    onRun(view)
                }
            } catch let failure as APIFailure where failure.isRefusal {
                // The stream refused (too many open for this token, say): ask for the run itself,
                // whose refusal (401, 403, 404) would not get better by asking again.
                let view = try await run(id)
                if view.isFinished { return view }
            } catch {
                // The stream broke (a dispatcher restart, a proxy's timeout): follow it again.
            }
            if let last, last.isFinished { return last }
            failures += 1
            try await Task.sleep(for: .milliseconds(min(5_000, 250 * failures)))
            if failures > 3 {
                // One poll, so that progress keeps showing while the stream is away.
                let view = try await run(id)
                onRun(view)
                if view.isFinished { return view }
            }
        }
    }

    /// Copies a step's log to standard output as it arrives.
    func log(_ id: String, step: String, attempt: Int?, follow: Bool) async throws {
        try await call {
            let query = Operations.GetStepLog.Input.Query(step: step, attempt: attempt, follow: follow ? true : nil)
            let body = try await api.getStepLog(path: .init(id: id), query: query).ok.body.plainText
            for try await chunk in body {
                chunk.withUnsafeBytes { StandardOutput.write($0) }
            }
        }
    }

    // MARK: The fleet, for operators

    func fleet() async throws -> Components.Schemas.Fleet {
        try await call { try await api.getFleet().ok.body.json }
    }

    func queues() async throws -> Components.Schemas.QueueList {
        try await call { try await api.listQueues().ok.body.json }
    }

    func pause(_ queue: String, reason: String?) async throws -> Components.Schemas.Queue {
        try await call { try await api.pauseQueue(path: .init(queue: queue), body: .json(.init(reason: reason))).ok.body.json }
    }

    func resume(_ queue: String) async throws -> Components.Schemas.Queue {
        try await call { try await api.resumeQueue(path: .init(queue: queue)).ok.body.json }
    }

    func drain(_ worker: String, reason: String?) async throws -> Components.Schemas.Worker {
        try await call { try await api.drainWorker(path: .init(name: worker), body: .json(.init(reason: reason))).accepted.body.json }
    }

    /// Runs one exchange; what the generated client wraps is unwrapped to one line.
    private func call<T>(_ exchange: () async throws -> T) async throws -> T {
        do {
            return try await exchange()
        } catch let error as ClientError {
            if let failure = error.underlyingError as? APIFailure { throw failure }
            if error.response != nil {
                throw APIFailure(status: error.response?.status.code ?? 0, message: "the API at \(base) answered something this CLI cannot read (\(error.underlyingError))")
            }
            throw APIFailure(status: 0, message: "cannot reach the Gantry API at \(base): \(error.underlyingError)")
        }
    }

    private func unexpected() -> APIFailure {
        APIFailure(status: 0, message: "the API at \(base) answered with a status this CLI does not know")
    }
}

/// Puts the token on every request.
private struct BearerToken: ClientMiddleware {
    let token: String

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = "Bearer \(token)"
        return try await next(request, body, baseURL)
    }
}

/// Turns every refusal or failure (a status outside 2xx) into `APIFailure` with the
/// dispatcher's `error` line, whatever the operation: the CLI prints that line and exits
/// 2 (refused) or 3 (the API failed).
private struct RefusalLines: ClientMiddleware {
    let base: String

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, responseBody) = try await next(request, body, baseURL)
        guard response.status.kind != .successful else { return (response, responseBody) }
        var text = ""
        if let responseBody, let bytes = try? await [UInt8](collecting: responseBody, upTo: 1 << 20) {
            text = String(decoding: bytes, as: UTF8.self)
        }
        let message = JSONValue.parseObject(text)?["error"]?.stringValue
            ?? "HTTP \(response.status.code) from \(base)\(request.path ?? "")"
        throw APIFailure(status: response.status.code, message: message)
    }
}
