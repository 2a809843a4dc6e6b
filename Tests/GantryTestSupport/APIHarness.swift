import Foundation
import GantryCore
import GantryDispatcher
import GantryHTTP
import GantryPostgres
import GantryRuntime
import GantryWorkers

/// A dispatcher serving the API for one test, and a client for it.
package struct APIHarness {
    package let env: TestEnvironment
    package let port: Int
    package let http = HTTPClient(name: "test-http")
    package var base: String { "http://127.0.0.1:\(port)" }

    /// Starts a dispatcher with `--listen` on a free port and waits until it answers. A port free
    /// when asked may be taken before the dispatcher binds it (suites run in parallel, each with
    /// servers of its own): the dispatcher then exits with its listen error and another port is tried.
    package static func start(_ env: TestEnvironment, name: String = "api", extra: [String] = []) async throws -> (APIHarness, GantryProcess) {
        for attempt in 1...3 {
            let port = try freePort()
            let process = try env.dispatcher(["--listen", "127.0.0.1:\(port)"] + extra, name: attempt == 1 ? name : "\(name)-\(attempt)")
            let harness = APIHarness(env: env, port: port)
            if try await harness.waitUntilServing(process) { return (harness, process) }
        }
        throw Failure("the API found no free port in 3 tries")
    }

    /// A harness for a dispatcher already listening on `port`.
    package init(env: TestEnvironment, port: Int) {
        self.env = env
        self.port = port
    }

    /// Waits until `process` itself says it listens (any server on the port would answer
    /// /healthz) and the port answers; false when it exited because it could not listen.
    package func waitUntilServing(_ process: GantryProcess) async throws -> Bool {
        var exited = false
        try await env.eventually("the API on port \(port)") {
            if !process.isRunning {
                exited = true
                return true
            }
            guard process.log.contains("API listening") else { return false }
            return (try? await http.send(HTTPRequest(url: base + "/healthz", timeout: .seconds(1))))?.status == 200
        }
        guard exited else { return true }
        guard process.log.contains("cannot listen there") else { throw Failure("the dispatcher exited: \(process.log)") }
        return false
    }

    /// Creates a token straight in the database, as the schema owner (as `gantry token create`
    /// does with the admin's URL), and returns it.
    package func token(_ name: String, _ roles: [Role], env environments: [String] = []) async throws -> String {
        let token = APITokens.generate()
        var random = SystemRandomNumberGenerator()
        let result = try await TokenStore().create(
            id: Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random), name: name, roles: roles,
            environments: environments, hash: APITokens.hash(token), namespace: env.namespace, on: env.adminDB()
        )
        if case .failure(let refusal) = result { throw Failure(refusal.reason) }
        return token
    }

    /// Sends a request; returns the status and the JSON body.
    @discardableResult
    package func call(_ method: HTTPRequest.Method, _ path: String, token: String?, body: [String: JSONValue]? = nil) async throws -> (status: Int, json: [String: JSONValue]) {
        var request = HTTPRequest(method: method, url: base + path, timeout: .seconds(20))
        if let token { request.headers.append(("Authorization", "Bearer \(token)")) }
        if let body {
            request.headers.append(("Content-Type", "application/json"))
            request.body = Array(JSONValue.object(body).jsonText.utf8)
        }
        let response = try await http.send(request)
        return (response.status, JSONValue.parseObject(response.text) ?? [:])
    }

    /// Submits `pipeline` and returns the status and the run (or error) object.
    @discardableResult
    package func submit(_ pipeline: String, token: String, sha: String = "3f2a9c1", extra: [String: JSONValue] = [:]) async throws -> (status: Int, json: [String: JSONValue]) {
        var body: [String: JSONValue] = ["pipeline": .string(pipeline), "sha": .string(sha)]
        for (key, value) in extra { body[key] = value }
        return try await call(.post, "/v1/runs", token: token, body: body)
    }

    /// The run as the API shows it.
    package func run(_ id: String, token: String) async throws -> RunView {
        var request = HTTPRequest(url: base + "/v1/runs/\(id)", timeout: .seconds(20))
        request.headers.append(("Authorization", "Bearer \(token)"))
        let response = try await http.send(request)
        guard response.status == 200 else { throw Failure("GET run \(id): \(response.status) \(response.text)") }
        return try JSONDecoder().decode(RunView.self, from: Data(response.body))
    }

    /// Polls the run until `condition` holds.
    @discardableResult
    package func wait(_ id: String, token: String, timeout: Duration = .seconds(30), for what: String = "the run to finish",
              until condition: (RunView) -> Bool = { $0.isFinished }) async throws -> RunView {
        var last: RunView?
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let view = try await run(id, token: token)
            if condition(view) { return view }
            last = view
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure("timed out waiting for \(what); run is \(last?.status ?? "?"), steps \(last?.steps.map { "\($0.id)=\($0.status)" } ?? [])")
    }

    /// Runs the `gantry` CLI against this API with `token`; returns its exit status, stdout and
    /// stderr (through `Command`: no thread of the pool blocks while it runs).
    package func cli(
        _ arguments: [String], token: String, stdin: String? = nil, timeout: Duration = .seconds(120)
    ) async throws -> (status: Int32, out: String, err: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["GANTRY_URL"] = base
        environment["GANTRY_TOKEN"] = token
        let result = try await Command.run(
            env.binary, arguments, environment: environment, stdin: stdin,
            stem: env.logDirectory + "-cli-\(UUID().uuidString.prefix(8))", timeout: timeout
        )
        return (result.status, result.out, result.err)
    }

    /// Writes `text` to a file in the test's log folder and returns its path.
    package func file(_ name: String, _ text: String) throws -> String {
        let path = env.logDirectory + "-" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    package static func freePort() throws -> Int {
        try LoopbackPort.free()
    }
}

extension [String: JSONValue] {
    package var id: String { self["id"]?.stringValue ?? "" }
    package var error: String { self["error"]?.stringValue ?? "" }
}
