import Foundation
import GantryCore
import GantryDispatcher
import GantryPostgres
import GantryTestSupport
import Testing

/// The deploy kind's kubernetes target against a FAKE kubectl
/// (Fakes/kubectl: it records invocations and answers as kubectl does). No
/// Kubernetes API server can run where Gantry is tested; these tests prove the
/// commands, their order, the colors and the fencing — not a real cluster's
/// behaviour (docs/step-kinds.md lists what was not verified).
@Suite struct DeployKubernetesFakeTests {
    static let fakes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fakes").path

    static func deployment(_ name: String, app: String, color: String?, image: String) -> JSONValue {
        var labels: [String: JSONValue] = ["app": .string(app)]
        if let color { labels["color"] = .string(color) }
        return .object([
            "apiVersion": .string("apps/v1"), "kind": .string("Deployment"),
            "metadata": .object(["name": .string(name), "labels": .object(labels), "uid": .string("6f1c"), "resourceVersion": .string("4711")]),
            "spec": .object([
                "replicas": .number(2),
                "selector": .object(["matchLabels": .object(labels)]),
                "template": .object([
                    "metadata": .object(["labels": .object(labels)]),
                    "spec": .object(["containers": .array([.object(["name": .string(app), "image": .string(image)])])]),
                ]),
            ]),
            "status": .object(["readyReplicas": .number(2)]),
        ])
    }

    @Test func blueGreenRollingRollbackAndFailuresWithAFakeKubectl() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let statePath = env.logDirectory + "-kube.json", logPath = env.logDirectory + "-kubectl.log"
        try JSONValue.object([
            "deployments": .object([
                "api-blue": Self.deployment("api-blue", app: "api", color: "blue", image: "registry.local/api:v1"),
                "billing": Self.deployment("billing", app: "billing", color: nil, image: "registry.local/billing:v1"),
            ]),
            "services": .object(["api": .object(["spec": .object(["selector": .object(["app": .string("api"), "color": .string("blue")])])])]),
        ]).jsonText.write(toFile: statePath, atomically: true, encoding: .utf8)
        // Production's policy lets its steps inherit AWS_REGION (an EKS exec plugin would need it),
        // not the worker's access keys.
        let policy = "environment: production\ninherit_env: [AWS_REGION]\n"
        _ = try await EnvironmentStore().apply(name: "production", definition: policy, sha256: APITokens.sha256Hex(policy),
                                               actor: "test-admin", namespace: env.namespace, on: env.adminDB())
        let envPath = env.logDirectory + "-kubectl-env.log"
        let worker = try env.worker("kube", kind: "deploy", concurrency: 2, environment: [
            "PATH": "\(Self.fakes):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")",
            "FAKE_KUBECTL_STATE": statePath, "FAKE_KUBECTL_LOG": logPath, "FAKE_KUBECTL_ENV": envPath,
            "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIAFAKE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
        ])
        let token = try await api.token("ci", [.submitter], env: ["production"])
        func state() throws -> [String: JSONValue] {
            let text = try String(contentsOfFile: statePath, encoding: .utf8)
            guard let object = JSONValue.parseObject(text) else { throw Failure("the fake kubectl's state is not a JSON object") }
            return object
        }
        func selectorColor() throws -> String? {
            guard case .object(let services)? = try state()["services"] else { return nil }
            return KubernetesColor.of(services["api"])
        }
        func invocations() throws -> [String] {
            let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n").map(String.init)
            try "".write(toFile: logPath, atomically: true, encoding: .utf8)
            return lines
        }

        let release = """
            pipeline: kube
            environment: production
            steps:
              - id: deploy-api
                kind: deploy
                with: { target: kubernetes, namespace: prod, service: api, image: "registry.local/api:v2", strategy: blue-green }
              - id: deploy-billing
                kind: deploy
                needs: [deploy-api]
                with: { target: kubernetes, namespace: prod, service: billing, image: "registry.local/billing:v2", strategy: rolling }
            """
        let first = try await api.submit(release, token: token).json.id
        let run = try await api.wait(first, token: token)
        #expect(run.status == "succeeded", "\(run.steps.map { "\($0.id): \($0.lastError ?? "")" })")
        #expect(try invocations() == [
            "--namespace=prod get service api -o json",
            "--namespace=prod get deployment api-blue -o json",
            "--namespace=prod apply -f -",
            "--namespace=prod rollout status deployment/api-green --timeout=300s",
            #"--namespace=prod patch service api -p {"spec":{"selector":{"color":"green"}}}"#,
            "--namespace=prod get deployment billing -o json",
            "--namespace=prod set image deployment/billing billing=registry.local/billing:v2",
            "--namespace=prod rollout status deployment/billing --timeout=300s",
        ])
        #expect(try selectorColor() == "green")
        // kubectl saw AWS_REGION, and neither the access keys nor any GANTRY_* variable.
        #expect(Set(try String(contentsOfFile: envPath, encoding: .utf8).split(separator: "\n")) == ["AWS_REGION"])
        let outputs = try #require(run.steps.first?.attempts.last?.outputs)
        #expect(outputs["previous_version"] == .string("registry.local/api:v1") && outputs["version"] == .string("registry.local/api:v2"))

        // A rolling release that never finishes is undone; on failure the api goes back to blue.
        let broken = """
            pipeline: kube-broken
            environment: production
            steps:
              - id: deploy-billing
                kind: deploy
                retry: { max_attempts: 1 }
                with: { target: kubernetes, namespace: prod, service: billing, image: "registry.local/billing:broken", rollback_on_failure: true, health: { timeout: 5s } }
            on_failure:
              - id: emergency-rollback
                kind: deploy
                with: { target: kubernetes, namespace: prod, action: rollback, services: [api] }
            """
        let second = try await api.submit(broken, token: token).json.id
        let failed = try await api.wait(second, token: token)
        let steps = Dictionary(uniqueKeysWithValues: failed.steps.map { ($0.id, $0) })
        #expect(failed.status == "failed")
        #expect(steps["deploy-billing"]?.attempts.first?.error == "billing: the rollout of registry.local/billing:broken did not finish within 5s; it was undone")
        #expect(steps["emergency-rollback"]?.status == "succeeded", "\(steps["emergency-rollback"]?.lastError ?? "")")
        #expect(try invocations() == [
            "--namespace=prod get deployment billing -o json",
            "--namespace=prod set image deployment/billing billing=registry.local/billing:broken",
            "--namespace=prod rollout status deployment/billing --timeout=5s",
            "--namespace=prod rollout undo deployment/billing",
            "--namespace=prod get service api -o json",
            "--namespace=prod get deployment api-blue -o json",
            #"--namespace=prod patch service api -p {"spec":{"selector":{"color":"blue"}}}"#,
        ])
        #expect(try selectorColor() == "blue")

        // A blue-green release whose rollout never finishes: the new color is deleted, the selector never moves.
        let third = try await api.submit("""
            pipeline: kube-broken-green
            environment: production
            steps:
              - id: deploy-api
                kind: deploy
                retry: { max_attempts: 1 }
                with: { target: kubernetes, namespace: prod, service: api, image: "registry.local/api:broken", strategy: blue-green, health: { timeout: 5s } }
            """, token: token).json.id
        let refused = try await api.wait(third, token: token)
        #expect(refused.steps.first?.attempts.first?.error
            == "api registry.local/api:broken: green its rollout did not finish within 5s; it was deleted and the Service still selects blue")
        #expect(try invocations().suffix(2) == [
            "--namespace=prod rollout status deployment/api-green --timeout=5s",
            "--namespace=prod delete deployment api-green",
        ])
        #expect(try selectorColor() == "blue")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }
}

enum KubernetesColor {
    static func of(_ service: JSONValue?) -> String? {
        guard case .object(let root)? = service, case .object(let spec)? = root["spec"], case .object(let selector)? = spec["selector"] else { return nil }
        return selector["color"]?.stringValue
    }
}
