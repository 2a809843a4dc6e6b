import Foundation
import GantryCore
import GantryTestSupport
import GantryWorkers
import Hummingbird
import Synchronization
import Testing

/// The notify kind run by a real worker process against a local server that
/// captures what Slack, a webhook receiver and PagerDuty would get.
@Suite struct NotifyTests {
    struct Captured: Sendable {
        var path: String
        var headers: [String: String]
        var body: String
    }

    final class Capture: Sendable {
        let requests = Mutex<[Captured]>([])
        let pagerDutyCalls = Atomic<Int>(0)

        func all(_ path: String) -> [Captured] { requests.withLock { $0.filter { $0.path == path } } }
    }

    func router(_ capture: Capture) -> Router<BasicRequestContext> {
        let router = Router()
        @Sendable func record(_ request: Request) async throws -> Captured {
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
            let captured = Captured(path: request.uri.path, headers: headers, body: String(buffer: body))
            capture.requests.withLock { $0.append(captured) }
            return captured
        }
        router.post("/slack/**") { request, _ -> Response in
            _ = try await record(request)
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok")))
        }
        router.post("/hook") { request, _ -> Response in
            _ = try await record(request)
            return Response(status: .noContent)
        }
        router.post("/pd") { request, _ -> Response in
            _ = try await record(request)
            // Rate-limited, then down, then accepted: the step must wait and try again.
            switch capture.pagerDutyCalls.add(1, ordering: .relaxed).newValue {
            case 1: return Response(status: .tooManyRequests, headers: [.retryAfter: "1"])
            case 2: return Response(status: .serviceUnavailable)
            default:
                return Response(status: .accepted, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: #"{"status":"success","dedup_key":"x"}"#)))
            }
        }
        router.post("/refuses") { request, _ -> Response in
            _ = try await record(request)
            return Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: "invalid_payload")))
        }
        return router
    }

    @Test func slackWebhookAndPagerDutyGetTheRightShapeSignedAndWithoutSecrets() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let capture = Capture()
        let hookSecret = "whsec_\(UUID().uuidString.prefix(16))"
        let routingKey = "R0UT1NG\(UUID().uuidString.prefix(10))"
        try await LocalHTTPServer.serve(router(capture)) { base in
            let slackURL = "\(base)/slack/T000/B000/\(UUID().uuidString.prefix(12))"
            let worker = try env.worker("notifier", kind: "notify,noop", concurrency: 8, environment: [
                "GANTRY_SECRET_SLACK_WEBHOOK": slackURL, "GANTRY_SECRET_HOOK_SECRET": hookSecret, "GANTRY_SECRET_PD_KEY": routingKey,
            ])
            func pipeline(exitCode: Int) -> String { """
                pipeline: notify-demo
                environment: staging
                steps:
                  - id: deploy
                    kind: noop
                    retry: { max_attempts: 1 }
                    with: { exit_code: \(exitCode) }
                  - id: slack
                    kind: notify
                    needs: [deploy]
                    with:
                      channel: slack
                      webhook_url: "${{ secrets.SLACK_WEBHOOK }}"
                      message: "Deployed ${{ run.short_sha }} to ${{ run.environment }}"
                      link: "http://gantry.test/runs/${{ run.id }}"
                      on: [success]
                  - id: hook
                    kind: notify
                    needs: [deploy]
                    with:
                      channel: webhook
                      url: "\(base)/hook"
                      secret: "${{ secrets.HOOK_SECRET }}"
                      message: "the secret ${{ secrets.HOOK_SECRET }} must not travel"
                on_failure:
                  - id: page
                    kind: notify
                    with:
                      channel: pagerduty
                      url: "\(base)/pd"
                      routing_key: "${{ secrets.PD_KEY }}"
                      severity: critical
                      message: "${{ run.pipeline }} failed in ${{ run.environment }}: ${{ run.failed_steps }}"
                  - id: slack-failure
                    kind: notify
                    with: { channel: slack, webhook_url: "${{ secrets.SLACK_WEBHOOK }}", on: [success] }
                """
            }
            // A run that succeeds: Slack and the webhook hear of it, PagerDuty does not.
            let good = try await api.submit(pipeline(exitCode: 0), token: token).json.id
            let succeeded = try await api.wait(good, token: token)
            #expect(succeeded.status == "succeeded", "\(succeeded.steps.map { "\($0.id): \($0.lastError ?? "")" })")
            let slack = capture.all(slackURL.replacingOccurrences(of: base, with: ""))
            #expect(slack.count == 1)
            let slackBody = try #require(JSONValue.parse(slack.first?.body ?? ""))
            guard case .object(let message) = slackBody, case .array(let blocks)? = message["blocks"], blocks.count == 3 else {
                Issue.record("not a Block Kit message: \(slack.first?.body ?? "")")
                return
            }
            #expect(message["text"] == .string("Deployed 3f2a9c1 to staging"))
            let rendered = slackBody.jsonText
            #expect(rendered.contains(#"*Status*\nsucceeded"#) && rendered.contains(#"*Environment*\nstaging"#), "\(rendered)")
            #expect(rendered.contains("<http://gantry.test/runs/\(good)|Open in Gantry>"))

            let hooks = capture.all("/hook")
            #expect(hooks.count == 1)
            let hook = try #require(hooks.first)
            let timestamp = try #require(hook.headers["x-gantry-timestamp"])
            let signature = try #require(hook.headers["x-gantry-signature"])
            let delivery = try #require(hook.headers["x-gantry-delivery"])
            #expect(WebhookSignature.verify(body: hook.body, timestamp: timestamp, delivery: delivery, signature: signature, secret: hookSecret, now: Date()))
            #expect(!WebhookSignature.verify(body: hook.body + " ", timestamp: timestamp, delivery: delivery, signature: signature, secret: hookSecret, now: Date()),
                    "a changed body must not verify")
            #expect(!WebhookSignature.verify(body: hook.body, timestamp: timestamp, delivery: delivery + "x", signature: signature, secret: hookSecret, now: Date()),
                    "another delivery id must not verify")
            #expect(!WebhookSignature.verify(body: hook.body, timestamp: timestamp, delivery: delivery, signature: signature, secret: hookSecret,
                                             now: Date().addingTimeInterval(3_600)), "an old delivery must not verify (replay)")
            let event = try #require(JSONValue.parseObject(hook.body))
            #expect(event["event"] == .string("run.success"))
            #expect(event["message"] == .string("the secret *** must not travel"))
            guard case .object(let run)? = event["run"] else {
                Issue.record("no run object in \(hook.body)")
                return
            }
            #expect(run["id"] == .string(good) && run["sha"] == .string("3f2a9c1") && run["environment"] == .string("staging"))
            // When the run started, as an ISO 8601 time (it used to be empty).
            let startedAt = run["started_at"]?.stringValue ?? ""
            #expect(Timestamp.parseISO8601(startedAt) != nil, "started_at '\(startedAt)'")
            #expect(capture.all("/pd").isEmpty)

            // A run that fails: PagerDuty is paged (after a 429 and a 503), Slack (on: success) is not.
            let bad = try await api.submit(pipeline(exitCode: 3), token: token).json.id
            let failed = try await api.wait(bad, token: token, timeout: .seconds(40))
            #expect(failed.status == "failed")
            let steps = Dictionary(uniqueKeysWithValues: failed.steps.map { ($0.id, $0) })
            #expect(steps["page"]?.status == "succeeded", "\(steps["page"]?.lastError ?? "")")
            #expect(steps["page"]?.attempts.last?.outputs["tries"] == .number(3))
            #expect(steps["slack-failure"]?.attempts.last?.outputs["sent"] == .bool(false))
            let pages = capture.all("/pd")
            #expect(pages.count == 3)
            let page = try #require(JSONValue.parseObject(pages.last?.body ?? ""))
            #expect(page["routing_key"] == .string(routingKey))
            #expect(page["event_action"] == .string("trigger"))
            #expect(page["dedup_key"] == .string("gantry-run-\(bad)"))
            guard case .object(let payload)? = page["payload"] else {
                Issue.record("no payload in \(pages.last?.body ?? "")")
                return
            }
            #expect(payload["summary"] == .string("notify-demo failed in staging: deploy"))
            #expect(payload["severity"] == .string("critical"))
            let pageLog = try await api.cli(["logs", bad, "--step", "page"], token: token).out
            #expect(pageLog.contains("pagerduty answered status 429; trying again in 1s"), "\(pageLog)")
            #expect(capture.all(slackURL.replacingOccurrences(of: base, with: "")).count == 1)

            // The Slack URL, the signing secret and the routing key are secrets: nothing Gantry keeps shows them.
            let details = try await api.cli(["run", bad, "--output", "json"], token: token).out
                + (try await api.cli(["run", good, "--output", "json"], token: token).out)
            for secret in [slackURL, hookSecret, routingKey] {
                #expect(!details.contains(secret))
            }
            _ = await worker.stop()
        }
        _ = await dispatcher.stop()
    }

    @Test func aRefusingReceiverFailsTheStepAtOnceWithItsAnswer() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let capture = Capture()
        try await LocalHTTPServer.serve(router(capture)) { base in
            let worker = try env.worker("notifier", kind: "notify", concurrency: 2, environment: ["GANTRY_SECRET_HOOK": "s3cret-value"])
            // A Slack notification without its URL is refused at submit, before any step runs.
            let incomplete = try await api.submit("""
                pipeline: refused
                environment: staging
                steps:
                  - id: no-url
                    kind: notify
                    with: { channel: slack }
                """, token: token)
            #expect(incomplete.status == 422 || incomplete.status == 400)
            #expect(incomplete.json.error.contains("step 'no-url': with") && incomplete.json.error.contains("webhook_url"),
                    "\(incomplete.json.error)")
            let pipeline = """
                pipeline: refused
                environment: staging
                steps:
                  - id: hook
                    kind: notify
                    with: { channel: webhook, url: "\(base)/refuses", secret: "${{ secrets.HOOK }}" }
                """
            let id = try await api.submit(pipeline, token: token).json.id
            let run = try await api.wait(id, token: token)
            let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
            #expect(capture.all("/refuses").count == 1, "a 400 is not retried")
            #expect(steps["hook"]?.attempts.count == 1)
            #expect(steps["hook"]?.attempts.first?.error == "webhook answered 400: invalid_payload after 1 try")
            _ = await worker.stop()
        }
        _ = await dispatcher.stop()
    }
}
