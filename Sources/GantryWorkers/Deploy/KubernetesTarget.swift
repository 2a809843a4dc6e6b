import Foundation
import GantryCore
import GantryHTTP
import GantryProcess

/// The `kubernetes` deploy target, through `kubectl` (on the worker's PATH, with
/// its usual configuration: `KUBECONFIG`, or `with.context`):
///
/// - rolling: `kubectl set image deployment/SERVICE CONTAINER=IMAGE`, then
///   `kubectl rollout status --timeout`; a rollout that does not finish is undone
///   (`rollout undo`) when `rollback_on_failure` is set.
/// - blue-green: the Service's selector names a color; the other color's
///   Deployment (`SERVICE-green` or `SERVICE-blue`) is applied from the serving
///   one with the new image, must finish its rollout (and pass `health.url` when
///   given), and only then is the Service's selector patched to it. The old
///   color stays, scaled as it was, for a rollback.
/// - rollback: blue-green services switch their selector back; others `rollout undo`.
///
/// No API server runs where Gantry is tested: the tests drive this against a fake
/// kubectl that records its invocations and answers as kubectl does
/// (docs/step-kinds.md says what that does not prove).
struct KubernetesTarget {
    struct Spec {
        var service: String
        var image: String
        var container: String
        var namespace: String?
        var kubeContext: String?
        var rolloutTimeout: Duration
        var healthURL: String?
        var expectStatus: Int
    }

    let context: StepContext
    let environment: [String: String]
    let kubectl: String

    init(context: StepContext, environment: [String: String]) throws {
        // Which program runs is the worker's configuration, never the pipeline's: a step that could
        // name it could run a script of its own with the cluster's credentials.
        guard context.inputs["kubectl"] == nil else {
            throw StepFailure("with.kubectl: the kubectl program is the worker's setting (GANTRY_KUBECTL), not the pipeline's; remove it", retryable: false)
        }
        guard let kubectl = ChildProcess.locate(environment["GANTRY_KUBECTL"] ?? "kubectl", path: environment["PATH"]) else {
            throw StepFailure("deploy: kubectl is not on this worker's PATH", retryable: false)
        }
        self.context = context
        // kubectl keeps the worker's cluster configuration (KUBECONFIG, HOME) but never Gantry's
        // own variables (the database and Redis URLs, the secrets), and the worker's cloud
        // credentials (AWS_*, for an EKS exec plugin) only where a policy of its pool lists them
        // in inherit_env.
        self.environment = environment.filter { context.scope.mayInherit($0.key) }
        self.kubectl = kubectl
    }

    func deploy(_ spec: Spec, strategy: String, rollbackOnFailure: Bool) async throws -> StepOutputs {
        strategy == "blue-green"
            ? try await blueGreen(spec)
            : try await rolling(spec, rollbackOnFailure: rollbackOnFailure)
    }

    private func rolling(_ spec: Spec, rollbackOnFailure: Bool) async throws -> StepOutputs {
        let deployment = try await getJSON(spec, ["get", "deployment", spec.service])
        let previous = Self.image(of: deployment, container: spec.container)
        try await context.checkLease()
        _ = try await kubectl(spec, ["set", "image", "deployment/\(spec.service)", "\(spec.container)=\(spec.image)"])
        do {
            _ = try await kubectl(spec, ["rollout", "status", "deployment/\(spec.service)", "--timeout=\(Int(spec.rolloutTimeout.milliseconds / 1_000))s"])
        } catch {
            if rollbackOnFailure {
                context.log.write("the rollout did not finish; undoing it as rollback_on_failure asks")
                try await context.checkLease()
                _ = try? await kubectl(spec, ["rollout", "undo", "deployment/\(spec.service)"])
            }
            throw StepFailure("\(spec.service): the rollout of \(spec.image) did not finish within \(DurationParser.format(spec.rolloutTimeout))\(rollbackOnFailure ? "; it was undone" : "")")
        }
        return outputs(spec, version: spec.image, previous: previous, strategy: "rolling", result: "deployed")
    }

    private func blueGreen(_ spec: Spec) async throws -> StepOutputs {
        let service = try await getJSON(spec, ["get", "service", spec.service])
        let current = Self.selector(of: service)["color"] ?? "blue"
        let next = current == "blue" ? "green" : "blue"
        let serving = try await getJSON(spec, ["get", "deployment", "\(spec.service)-\(current)"])
        let previous = Self.image(of: serving, container: spec.container)
        let green = Self.recolored(serving, name: "\(spec.service)-\(next)", color: next, container: spec.container, image: spec.image)
        try await context.checkLease()
        _ = try await kubectl(spec, ["apply", "-f", "-"], stdin: green.jsonText)
        var problem: String?
        do {
            _ = try await kubectl(spec, ["rollout", "status", "deployment/\(spec.service)-\(next)", "--timeout=\(Int(spec.rolloutTimeout.milliseconds / 1_000))s"])
            if let url = spec.healthURL {
                let response = try? await HTTPClient(name: "gantry-deploy-health").send(HTTPRequest(url: url, timeout: .seconds(10)))
                if response?.status != spec.expectStatus { problem = "\(url) answered \(response.map { String($0.status) } ?? "nothing"), not \(spec.expectStatus)" }
            }
        } catch {
            problem = "its rollout did not finish within \(DurationParser.format(spec.rolloutTimeout))"
        }
        if let problem {
            try await context.checkLease()
            _ = try? await kubectl(spec, ["delete", "deployment", "\(spec.service)-\(next)"])
            throw StepFailure("\(spec.service) \(spec.image): \(next) \(problem); it was deleted and the Service still selects \(current)", retryable: false)
        }
        try await context.checkLease()
        _ = try await kubectl(spec, ["patch", "service", spec.service, "-p", #"{"spec":{"selector":{"color":"\#(next)"}}}"#])
        context.log.write("Service \(spec.service) now selects \(next) (\(spec.image)); \(current) (\(previous ?? "?")) is kept for a rollback")
        return outputs(spec, version: spec.image, previous: previous, strategy: "blue-green", result: "deployed")
    }

    func rollback(_ spec: Spec) async throws -> StepOutputs {
        let service = try await getJSON(spec, ["get", "service", spec.service])
        if let current = Self.selector(of: service)["color"] {
            let other = current == "blue" ? "green" : "blue"
            let kept = try await getJSON(spec, ["get", "deployment", "\(spec.service)-\(other)"])
            let image = Self.image(of: kept, container: spec.container)
            try await context.checkLease()
            _ = try await kubectl(spec, ["patch", "service", spec.service, "-p", #"{"spec":{"selector":{"color":"\#(other)"}}}"#])
            return outputs(spec, version: image ?? other, previous: nil, strategy: "blue-green", result: "rolled_back")
        }
        try await context.checkLease()
        _ = try await kubectl(spec, ["rollout", "undo", "deployment/\(spec.service)"])
        _ = try await kubectl(spec, ["rollout", "status", "deployment/\(spec.service)", "--timeout=\(Int(spec.rolloutTimeout.milliseconds / 1_000))s"])
        let deployment = try await getJSON(spec, ["get", "deployment", spec.service])
        return outputs(spec, version: Self.image(of: deployment, container: spec.container) ?? "", previous: nil, strategy: "rolling", result: "rolled_back")
    }

    // MARK: kubectl

    private func getJSON(_ spec: Spec, _ arguments: [String]) async throws -> JSONValue {
        let text = try await kubectl(spec, arguments + ["-o", "json"])
        guard let value = JSONValue.parse(text) else {
            throw StepFailure("kubectl \(arguments.joined(separator: " ")) did not print JSON")
        }
        return value
    }

    /// Runs kubectl; stdout is returned, stderr goes to the step log.
    private func kubectl(_ spec: Spec, _ arguments: [String], stdin: String? = nil) async throws -> String {
        var full: [String] = []
        // One argument each (`--context=NAME`): a value can never be read as another flag.
        if let kubeContext = spec.kubeContext { full.append("--context=" + kubeContext) }
        if let namespace = spec.namespace { full.append("--namespace=" + namespace) }
        full += arguments
        let scratch = try Scratch(for: context.job)
        defer { scratch.remove() }
        if let stdin { try stdin.write(toFile: scratch.path("stdin"), atomically: true, encoding: .utf8) }
        var process = ChildProcess(executable: kubectl, arguments: full, environment: environment, stdoutFile: scratch.path("stdout"))
        if stdin != nil { process.stdinFile = scratch.path("stdin") }
        let log = context.log
        context.log.write("$ kubectl \(full.joined(separator: " "))")
        let output = log.processOutput()
        let termination = try await process.run { output.write($0) }
        if termination.stopped { throw CancellationError() }
        let out = String(decoding: FileManager.default.contents(atPath: scratch.path("stdout")) ?? Data(), as: UTF8.self)
        guard termination.ending == .exited(0) else {
            throw StepFailure("kubectl \(arguments.prefix(3).joined(separator: " ")) \(termination.ending)")
        }
        return out
    }

    // MARK: Objects

    static func image(of deployment: JSONValue, container: String) -> String? {
        containers(of: deployment).first { $0["name"]?.stringValue == container }?["image"]?.stringValue
    }

    static func selector(of service: JSONValue) -> [String: String] {
        guard case .object(let root) = service, case .object(let spec)? = root["spec"], case .object(let selector)? = spec["selector"] else { return [:] }
        return selector.compactMapValues(\.stringValue)
    }

    private static func containers(of deployment: JSONValue) -> [[String: JSONValue]] {
        guard case .object(let root) = deployment, case .object(let spec)? = root["spec"], case .object(let template)? = spec["template"],
              case .object(let podSpec)? = template["spec"], case .array(let containers)? = podSpec["containers"] else { return [] }
        return containers.compactMap { if case .object(let c) = $0 { c } else { nil } }
    }

    /// `deployment` renamed, its labels and selector set to `color`, `container`'s image
    /// set to `image`, and what the API server owns (status, uid, resourceVersion …) removed.
    static func recolored(_ deployment: JSONValue, name: String, color: String, container: String, image: String) -> JSONValue {
        guard case .object(var root) = deployment else { return deployment }
        root["status"] = nil
        if case .object(var metadata)? = root["metadata"] {
            for owned in ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "annotations"] { metadata[owned] = nil }
            metadata["name"] = .string(name)
            metadata["labels"] = withColor(metadata["labels"], color)
            root["metadata"] = .object(metadata)
        }
        if case .object(var spec)? = root["spec"] {
            if case .object(var selector)? = spec["selector"] {
                selector["matchLabels"] = withColor(selector["matchLabels"], color)
                spec["selector"] = .object(selector)
            }
            if case .object(var template)? = spec["template"] {
                if case .object(var metadata)? = template["metadata"] {
                    metadata["labels"] = withColor(metadata["labels"], color)
                    template["metadata"] = .object(metadata)
                }
                if case .object(var podSpec)? = template["spec"], case .array(let containers)? = podSpec["containers"] {
                    podSpec["containers"] = .array(containers.map { item in
                        guard case .object(var c) = item, c["name"]?.stringValue == container else { return item }
                        c["image"] = .string(image)
                        return .object(c)
                    })
                    template["spec"] = .object(podSpec)
                }
                spec["template"] = .object(template)
            }
            root["spec"] = .object(spec)
        }
        return .object(root)
    }

    private static func withColor(_ labels: JSONValue?, _ color: String) -> JSONValue {
        var map: [String: JSONValue] = [:]
        if case .object(let existing)? = labels { map = existing }
        map["color"] = .string(color)
        return .object(map)
    }

    private func outputs(_ spec: Spec, version: String, previous: String?, strategy: String, result: String) -> StepOutputs {
        [
            "service": .string(spec.service), "version": .string(version), "previous_version": previous.map(JSONValue.string) ?? .null,
            "strategy": .string(strategy), "target": .string("kubernetes"), "result": .string(result),
        ]
    }
}
