import Foundation
import GantryCore

/// The `deploy` kind. The `local` target runs a service as local processes
/// behind an nginx the worker manages (see `LocalTarget`):
///
/// ```yaml
/// - id: deploy-api
///   kind: deploy
///   with:
///     target: local
///     service: api
///     version: "${{ run.short_sha }}"
///     run: "exec ./bin/api --port $PORT"     # started once per instance, with PORT set
///     env: { LOG_LEVEL: info }
///     instances: 2
///     listen: "127.0.0.1:8300"               # where nginx serves the service
///     strategy: blue-green                   # or rolling
///     health: { path: /healthz, expect_status: 200, timeout: 30s }
///     rollback_window: 10m                   # blue keeps running this long after a switch
///     rollback_on_failure: true              # a rolling deploy that fails half-way goes back
/// - id: rollback
///   kind: deploy
///   with: { target: local, action: rollback, service: api, run: "exec ./bin/api --port $PORT" }   # to_version: optional
/// ```
/// Outputs: `service`, `version`, `previous_version`, `strategy`, `target`,
/// `result` (deployed, unchanged, rolled_back), `listen`, `ports` — kept in the
/// ledger with the attempt, where the `deployments` view reads them (DORA figures).
/// Before every change (starting, switching, stopping) the executor checks it
/// still holds the step's lease: a deploy whose lease was lost stops there.
public struct DeployExecutor: StepExecutor {
    public let kind = "deploy"

    private let stateDirectory: String
    private let environment: [String: String]

    /// - Parameter stateDirectory: where the local target keeps its state and nginx files
    ///   (`gantry worker --state-dir`, default `.gantry/local`).
    public init(stateDirectory: String = ".gantry/local", environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.stateDirectory = stateDirectory
        self.environment = environment
    }

    public func execute(_ context: StepContext) async throws -> StepOutputs {
        let inputs = try context.decodeInputs(DeployInputs.self)
        switch inputs.target ?? .local {
        case .local: break
        case .kubernetes: return try await kubernetes(context, inputs)
        }
        let spec = try Self.spec(context, inputs)
        let target = LocalTarget(
            stateDirectory: stateDirectory, context: context,
            baseEnvironment: ShellCommand.baseEnvironment(context, workerEnvironment: environment)
        )
        switch inputs.action ?? .deploy {
        case .deploy:
            let strategy = (inputs.strategy ?? .rolling).rawValue
            guard !spec.command.isEmpty else { throw StepFailure("with.run: give the command that starts one instance (it listens on $PORT)", retryable: false) }
            return try await target.deploy(spec, strategy: strategy, rollbackOnFailure: inputs.rollbackOnFailure == true)
        case .rollback:
            guard let names = inputs.services else {
                return try await target.rollback(spec, to: inputs.toVersion)
            }
            // An emergency rollback of several services: each is tried, whatever the others did.
            var rolledBack: [JSONValue] = []
            var failures: [String] = []
            for name in names {
                var one = spec
                one.service = name
                do {
                    let outputs = try await target.rollback(one, to: nil)
                    rolledBack.append(.object(outputs))
                } catch {
                    context.log.write("\(name): \(error)")
                    failures.append("\(name): \(error)")
                }
            }
            guard failures.isEmpty else {
                throw StepFailure("rollback failed for \(failures.count) of \(names.count) services: \(failures.joined(separator: "; "))")
            }
            return ["result": .string("rolled_back"), "services": .array(rolledBack)]
        }
    }

    private func kubernetes(_ context: StepContext, _ inputs: DeployInputs) async throws -> StepOutputs {
        let target = try KubernetesTarget(context: context, environment: environment)
        let timeout = inputs.health?.timeout ?? .seconds(300)
        let healthURL = inputs.health?.url
        let expectStatus = inputs.health?.expectStatus ?? 200
        let names = inputs.services ?? inputs.service.map { [$0] } ?? []
        guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" } }) else {
            throw StepFailure("with.service: give the Deployment's name (lower-case letters, digits and -)", retryable: false)
        }
        for (key, value) in [("context", inputs.context), ("namespace", inputs.namespace)] {
            if let value, !SafeName.isValid(value) {
                throw StepFailure("with.\(key) '\(value.prefix(80))': give a name (\(SafeName.rule))", retryable: false)
            }
        }
        func spec(_ service: String) -> KubernetesTarget.Spec {
            KubernetesTarget.Spec(
                service: service, image: inputs.image ?? "", container: inputs.container ?? service,
                namespace: inputs.namespace, kubeContext: inputs.context, rolloutTimeout: timeout,
                healthURL: healthURL, expectStatus: expectStatus
            )
        }
        switch inputs.action ?? .deploy {
        case .deploy:
            guard let image = inputs.image, !image.isEmpty else { throw StepFailure("with.image: give the image to deploy", retryable: false) }
            context.log.write("deploying \(image) to \(names[0])")
            let strategy = (inputs.strategy ?? .rolling).rawValue
            return try await target.deploy(spec(names[0]), strategy: strategy, rollbackOnFailure: inputs.rollbackOnFailure == true)
        case .rollback:
            var rolledBack: [JSONValue] = []
            var failures: [String] = []
            for name in names {
                do { rolledBack.append(.object(try await target.rollback(spec(name)))) } catch { failures.append("\(name): \(error)") }
            }
            guard failures.isEmpty else {
                throw StepFailure("rollback failed for \(failures.count) of \(names.count) services: \(failures.joined(separator: "; "))")
            }
            return names.count == 1 ? (rolledBack.first.flatMap { if case .object(let o) = $0 { o } else { nil } } ?? [:])
                : ["result": .string("rolled_back"), "services": .array(rolledBack)]
        }
    }

    static func spec(_ context: StepContext, _ inputs: DeployInputs) throws -> LocalTarget.Spec {
        // A rollback of several services names them in services:; each is checked here.
        let names = (inputs.service.map { [$0] } ?? []) + (inputs.services ?? [])
        guard let service = names.first, names.allSatisfy(SafeName.isValid) else {
            throw StepFailure("with.service: give the service's name (\(SafeName.rule))", retryable: false)
        }
        let isRollback = inputs.action == .rollback
        let version = inputs.version ?? inputs.image ?? ""
        guard isRollback || !version.isEmpty else { throw StepFailure("with.version: give the version being deployed", retryable: false) }
        // The address is written into nginx's configuration: host:port and nothing else, after expressions.
        guard let listen = inputs.listen ?? (isRollback ? "" : nil), (isRollback && listen.isEmpty) || ListenAddress.isValid(listen) else {
            throw StepFailure("with.listen: give the address nginx serves the service on as host:port, e.g. 127.0.0.1:8300", retryable: false)
        }
        var environment = inputs.env ?? [:]
        let healthPath = inputs.health?.path ?? "/healthz"
        let expectStatus = inputs.health?.expectStatus ?? 200
        let healthTimeout = inputs.health?.timeout ?? .seconds(30)
        let rollbackWindow = inputs.rollbackWindow ?? .seconds(600)
        // The instance command is shell text: expressions in it travel as variables, never pasted in.
        var command = inputs.run ?? ""
        if command.contains("${{") {
            let rewritten = ShellExpressions.rewrite(command)
            for (name, expression) in rewritten.variables {
                guard let value = context.bindings[expression] else {
                    throw StepFailure("with.run: '${{ \(expression) }}' has no value here", retryable: false)
                }
                environment[name] = value
            }
            command = rewritten.command
        }
        let instances = inputs.instances ?? 1
        guard (1...32).contains(instances) else { throw StepFailure("with.instances: give 1 to 32", retryable: false) }
        return LocalTarget.Spec(
            service: service, version: version, command: command, environment: environment,
            instances: instances, listen: listen, healthPath: healthPath, expectStatus: expectStatus,
            healthTimeout: healthTimeout, rollbackWindow: rollbackWindow, workdir: inputs.workdir
        )
    }
}
