import Foundation
import GantryCore
import GantryHTTP
import GantryPostgres
import GantryTestSupport
import Testing

/// Token scopes over HTTP: every role against every endpoint, and the actions log.
@Suite struct RunAPISecurityTests {
    struct Endpoint: Sendable {
        let name: String
        let method: HTTPRequest.Method
        let path: @Sendable (_ staging: String) -> String
        let body: [String: JSONValue]?
        /// What the endpoint asks of the token (on a staging run).
        let action: APIAction
    }

    static let staging = """
        pipeline: app
        environment: staging
        steps:
          - { id: build, kind: noop }
        """

    static let endpoints: [Endpoint] = [
        Endpoint(name: "submit", method: .post, path: { _ in "/v1/runs" }, body: ["pipeline": .string(staging), "sha": .string("abc1234")], action: .submit),
        Endpoint(name: "list", method: .get, path: { _ in "/v1/runs?env=staging" }, body: nil, action: .read),
        Endpoint(name: "get", method: .get, path: { "/v1/runs/\($0)" }, body: nil, action: .read),
        Endpoint(name: "events", method: .get, path: { "/v1/runs/\($0)/events" }, body: nil, action: .read),
        Endpoint(name: "logs", method: .get, path: { "/v1/runs/\($0)/logs?step=build" }, body: nil, action: .read),
        Endpoint(name: "approve", method: .post, path: { "/v1/runs/\($0)/approve" }, body: ["step": .string("build")], action: .approve),
        Endpoint(name: "reject", method: .post, path: { "/v1/runs/\($0)/reject" }, body: ["step": .string("build")], action: .approve),
        Endpoint(name: "cancel", method: .post, path: { "/v1/runs/\($0)/cancel" }, body: [:], action: .cancel),
        Endpoint(name: "retry", method: .post, path: { "/v1/runs/\($0)/retry" }, body: [:], action: .retry),
    ]

    @Test func everyRoleAgainstEveryEndpoint() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("w1")
        let admin = try await api.token("admin", [.admin])
        let run = try await api.submit(Self.staging, token: admin).json.id
        try await api.wait(run, token: admin)
        let roles: [(name: String, roles: [Role], envs: [String])] = [
            ("sub-staging", [.submitter], ["staging"]),
            ("sub-prod", [.submitter], ["production"]),
            ("appr-staging", [.approver], ["staging"]),
            ("appr-prod", [.approver], ["production"]),
            ("operator", [.operator], []),
            ("auditor", [.auditor], []),
            ("admin2", [.admin], []),
        ]
        for role in roles {
            let token = try await api.token(role.name, role.roles, env: role.envs)
            let grant = Grant(name: role.name, roles: Set(role.roles), environments: Set(role.envs))
            for endpoint in Self.endpoints {
                let (status, json) = try await api.call(endpoint.method, endpoint.path(run), token: token, body: endpoint.body)
                let allowed = if case .success = grant.decide(endpoint.action, environment: "staging") { true } else { false }
                let mayRead = if case .success = grant.decide(.read, environment: "staging") { true } else { false }
                if allowed {
                    #expect(status != 401 && status != 403, "\(role.name) \(endpoint.name): \(status) \(json.error)")
                } else if endpoint.action != .submit && endpoint.name != "list" && !mayRead {
                    // A run the token may not read does not exist for it (no existence oracle).
                    #expect(status == 404, "\(role.name) \(endpoint.name): \(status)")
                    #expect(json.error == "no run \(run) in this installation", "\(json.error)")
                } else {
                    #expect(status == 403, "\(role.name) \(endpoint.name): \(status)")
                    #expect(json.error.hasPrefix("token \(role.name) may not"), "\(json.error)")
                }
            }
        }
        // No token, a made-up token, a revoked token: 401, each with what to do.
        let revoked = try await api.token("old", [.admin])
        _ = try await TokenStore().revoke(name: "old", namespace: env.namespace, on: env.adminDB())
        // The application's role (what dispatchers and workers hold) can read tokens but not write them.
        await #expect(throws: PostgresError.self) {
            _ = try await TokenStore().revoke(name: "admin", namespace: env.namespace, on: env.db())
        }
        for token in [nil, "gty_not-a-real-token", revoked] {
            for endpoint in Self.endpoints {
                let (status, json) = try await api.call(endpoint.method, endpoint.path(run), token: token, body: endpoint.body)
                #expect(status == 401, "\(endpoint.name) with \(token == nil ? "no" : "a bad") token: \(status)")
                #expect(!json.error.isEmpty)
            }
        }
        // Health, readiness and the API description need no token.
        #expect(try await api.call(.get, "/healthz", token: nil).status == 200)
        #expect(try await api.call(.get, "/readyz", token: nil).status == 200)
        _ = (dispatcher, worker)
    }

    @Test func aStagingSubmitterCannotSubmitToProductionApproveOrReadProductionRuns() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let ci = try await api.token("ci-staging", [.submitter], env: ["development", "staging"])
        let admin = try await api.token("admin", [.admin])
        let production = Self.staging.replacingOccurrences(of: "environment: staging", with: "environment: production")
        let refused = try await api.submit(production, token: ci)
        #expect(refused.status == 403)
        #expect(refused.json.error == "token ci-staging may not submit in production: it is scoped to development, staging")
        let prodRun = try await api.submit(production, token: admin).json.id
        // Another environment's run is, to this token, no run at all.
        #expect(try await api.call(.get, "/v1/runs/\(prodRun)", token: ci).status == 404)
        let listed = try await api.call(.get, "/v1/runs", token: ci)
        #expect(listed.status == 200)
        #expect(listed.json["runs"] == .array([]))
        #expect(try await api.call(.get, "/v1/runs?env=production", token: ci).status == 403)
        // Every refusal and every accepted change is in the log with the token's name.
        let log = try await ActionLog().recent(namespace: env.namespace, limit: 10, on: env.db())
        #expect(log.contains { $0.actor == "ci-staging" && $0.action == "submit" && !$0.accepted && $0.environment == "production" })
        #expect(log.contains { $0.actor == "ci-staging" && $0.action == "read" && !$0.accepted && $0.runID == prodRun })
        #expect(log.contains { $0.actor == "admin" && $0.action == "submit" && $0.accepted && $0.runID == prodRun })
        // The log is append-only for the application.
        await #expect(throws: PostgresError.self) { try await env.db().run("UPDATE actions SET accepted = true") }
        await #expect(throws: PostgresError.self) { try await env.db().run("DELETE FROM approvals") }
        _ = dispatcher
    }

    @Test func badInputIsRefusedWithOneLineNamingThePlace() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let ci = try await api.token("ci", [.submitter], env: ["staging", "development"])
        let broken = try await api.submit("pipeline: x\nenvironment: staging\nsteps:\n  - { id: a, kind: noop, needs: [nope] }\n", token: ci)
        #expect(broken.status == 400)
        #expect(broken.json.error.hasPrefix("pipeline.yml:4:"), "\(broken.json.error)")
        let badSHA = try await api.submit(Self.staging, token: ci, sha: "main; rm -rf /")
        #expect(badSHA.status == 400 && badSHA.json.error.contains("is not a commit SHA"))
        let mismatch = try await api.submit(Self.staging, token: ci, extra: ["environment": .string("development")])
        #expect(mismatch.status == 400 && mismatch.json.error.contains("does not match"))
        // An environment the token may not submit to is refused before the pipeline is read.
        let elsewhere = try await api.submit("not: [valid", token: ci, extra: ["environment": .string("production")])
        #expect(elsewhere.status == 403)
        let notJSON = try await api.http.send(HTTPRequest.text(.post, api.base + "/v1/runs", "{", headers: [("Authorization", "Bearer \(ci)")]))
        #expect(notJSON.status == 400)
        #expect(try await api.call(.get, "/v1/runs/not-a-run", token: ci).status == 404)
        let openapi = try await api.http.send(HTTPRequest(url: api.base + "/openapi.yaml"))
        #expect(openapi.status == 200)
        for path in ["/v1/runs:", "/v1/runs/{id}:", "/v1/runs/{id}/events:", "/v1/runs/{id}/approve:", "/v1/runs/{id}/reject:",
                     "/v1/runs/{id}/cancel:", "/v1/runs/{id}/retry:", "/v1/runs/{id}/logs:", "/healthz:", "/readyz:",
                     "/v1/environments:", "/v1/environments/{name}:"] {
            #expect(openapi.text.contains(path), "openapi.yaml does not describe \(path)")
        }
        _ = dispatcher
    }

    /// What clients parse: every refusal is `{"error": one line}` as JSON, not cached, with the same
    /// words whichever layer refuses (the authentication middleware, the body decoder, a route);
    /// a path the API does not serve is a bare 404, token or not.
    @Test func refusalsAreOneLineOfJSONWhicheverLayerRefuses() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let admin = try await api.token("admin", [.admin])
        func send(
            _ method: HTTPRequest.Method, _ path: String, authorization: String?, body: String? = nil, type: String = "application/json"
        ) async throws -> HTTPResponse {
            var request = HTTPRequest(method: method, url: api.base + path, timeout: .seconds(20))
            if let authorization { request.headers.append(("Authorization", authorization)) }
            if let body {
                request.body = Array(body.utf8)
                request.headers.append(("Content-Type", type))
            }
            return try await api.http.send(request)
        }
        let noToken = "no token: send Authorization: Bearer <token> (gantry token create makes one; the CLI reads GANTRY_TOKEN)"
        let unknown = "the token is unknown or revoked; ask an admin for a new one (gantry token create)"
        let cases: [(HTTPRequest.Method, String, String?, String?, Int, String)] = [
            (.get, "/v1/runs", nil, nil, 401, noToken),
            (.get, "/v1/runs/x", "Bearer ", nil, 401, noToken),
            (.get, "/v1/environments", "Basic YTpi", nil, 401, noToken),
            (.get, "/v1/runs/x", "Bearer gty_made-up", nil, 401, unknown),
            (.post, "/v1/runs/x/cancel", "Bearer gty_made-up", "{}", 401, unknown),
            (.post, "/v1/runs", "Bearer \(admin)", "{", 400, "the request body is not the JSON object this endpoint takes"),
            (.post, "/v1/runs", "Bearer \(admin)", "{}", 400, "the request body has no field 'pipeline'"),
            (.post, "/v1/runs", "Bearer \(admin)", #"{"pipeline": 1, "sha": "abc1234"}"#, 400, "field 'pipeline' has the wrong type"),
            (.post, "/v1/runs", "Bearer \(admin)", String(repeating: " ", count: (1 << 20) + 1), 413, "the request body is larger than 1048576 bytes"),
            (.get, "/v1/runs?limit=0", "Bearer \(admin)", nil, 400, "limit must be between 1 and 1000"),
            (.get, "/v1/runs/not-a-run", "Bearer \(admin)", nil, 404, "no run not-a-run in this installation"),
        ]
        var responses: [(HTTPRequest.Method, String, HTTPResponse, Int, String)] = []
        for (method, path, authorization, body, status, error) in cases {
            responses.append((method, path, try await send(method, path, authorization: authorization, body: body), status, error))
        }
        // curl's -d says application/x-www-form-urlencoded unless told otherwise.
        responses.append((.post, "/v1/runs", try await send(.post, "/v1/runs", authorization: "Bearer \(admin)", body: "{}", type: "application/x-www-form-urlencoded"),
                          415, "Content-Type application/x-www-form-urlencoded: the API takes application/json (curl: -H 'Content-Type: application/json')"))
        for (method, path, response, status, error) in responses {
            #expect(response.status == status, "\(method) \(path): \(response.status)")
            #expect(response.text == JSONValue.object(["error": .string(error)]).jsonText + "\n", "\(method) \(path)")
            #expect(response.header("Content-Type") == "application/json; charset=utf-8")
            #expect(response.header("Cache-Control") == "no-store")
        }
        for (path, authorization) in [("/nope", nil), ("/v1/nope", "Bearer \(admin)"), ("/v1/runs/x/nope", "Bearer gty_made-up")] {
            let response = try await send(.get, path, authorization: authorization)
            #expect(response.status == 404 && response.body.isEmpty, "\(path): \(response.status) \(response.text)")
        }
        _ = dispatcher
    }
}
