import Foundation
import GantryCore
import GantryHTTP
import GantryProcess
import GantryRuntime

/// The `local` deploy target: a service's instances are local processes behind
/// an nginx this worker manages. Instances lead sessions of their own, so they
/// outlive a worker restart; the state directory (`state.json` per service and
/// the nginx files) is what the next attempt reads to finish or undo a deploy
/// that a killed worker left half done.
struct LocalTarget {
    struct Spec {
        var service: String
        var version: String
        var command: String
        var environment: [String: String]
        var instances: Int
        var listen: String
        var healthPath: String
        var expectStatus: Int
        var healthTimeout: Duration
        var rollbackWindow: Duration
        var workdir: String?

        var recipe: LocalDeployment.Recipe {
            LocalDeployment.Recipe(command: command, workdir: workdir, environment: environment)
        }
    }

    let stateDirectory: String
    let context: StepContext
    let baseEnvironment: [String: String]
    private let http = HTTPClient(name: "gantry-deploy-health")

    init(stateDirectory: String, context: StepContext, baseEnvironment: [String: String]) {
        self.stateDirectory = (stateDirectory as NSString).standardizingPath.hasPrefix("/")
            ? (stateDirectory as NSString).standardizingPath
            : FileManager.default.currentDirectoryPath + "/" + stateDirectory
        self.context = context
        self.baseEnvironment = baseEnvironment
    }

    var nginxPrefix: String { stateDirectory + "/nginx" }
    func serviceDirectory(_ service: String) -> String { stateDirectory + "/services/" + service }
    func statePath(_ service: String) -> String { serviceDirectory(service) + "/state.json" }
    func configPath(_ service: String) -> String { nginxPrefix + "/services/\(service).conf" }

    // MARK: Deploys

    /// Blue-green: the new release starts beside the serving one, is health-checked,
    /// then nginx switches to it in one reload; the old one is kept for the rollback window.
    /// Rolling: instances are replaced one at a time, each checked before the next.
    func deploy(_ spec: Spec, strategy: String, rollbackOnFailure: Bool) async throws -> StepOutputs {
        var state = try await recover(spec.service, listen: spec.listen, rollbackWindow: spec.rollbackWindow)
        // A service name on this target belongs to one address: a deploy to another address is
        // another service (or someone else's), and must not take this one's configuration.
        guard state.active == nil || state.listen == spec.listen else {
            throw StepFailure("\(spec.service) serves on \(state.listen) on this target; a deploy to \(spec.listen) must use another service name", retryable: false)
        }
        let previousVersion = state.active?.version
        if state.active?.version == spec.version, let active = state.active, try await allHealthy(active.instances, spec) {
            log("\(spec.service) \(spec.version) is already serving on \(spec.listen); nothing to do")
            return outputs(spec, strategy: strategy, previous: previousVersion, state: state, result: "unchanged")
        }
        switch strategy {
        case "blue-green": try await blueGreen(spec, &state)
        default: try await rolling(spec, &state, rollbackOnFailure: rollbackOnFailure)
        }
        return outputs(spec, strategy: strategy, previous: previousVersion, state: state, result: "deployed")
    }

    private func blueGreen(_ spec: Spec, _ state: inout LocalDeployment) async throws {
        let green = try await startRelease(spec, &state)
        guard try await allHealthy(green.instances, spec, wait: spec.healthTimeout) else {
            log("green \(spec.version) is unhealthy; stopping it — traffic never moved")
            try await context.checkLease()
            await Self.stop(green.instances)
            state.pending = nil
            try save(state)
            throw StepFailure("\(spec.service) \(spec.version): the new instances did not pass their health check (\(spec.healthPath) → \(spec.expectStatus)) within \(DurationParser.format(spec.healthTimeout)); traffic stayed on \(state.active?.version ?? "nothing")", retryable: false)
        }
        try await context.checkLease()
        try await switchTraffic(spec.service, listen: spec.listen, ports: green.ports, release: spec.version, probe: spec.healthPath)
        let retired = state.promotePending(keepUntilMs: WallClock.nowMs() + spec.rollbackWindow.milliseconds)
        state.remember(spec.version, spec.recipe)
        try save(state)
        log("traffic on \(spec.listen) moved to \(spec.version) (ports \(green.ports.map(String.init).joined(separator: ",")))\(state.previous.map { "; \($0.version) kept for \(DurationParser.format(spec.rollbackWindow)) for a rollback" } ?? "")")
        if let retired { await Self.stop(retired.instances) }
    }

    /// A full set of `version`, started as it was deployed, takes all traffic; `replacing` is stopped.
    private func restore(
        _ version: String, _ recipe: LocalDeployment.Recipe, _ spec: Spec, replacing: [LocalDeployment.Instance],
        _ state: inout LocalDeployment
    ) async throws {
        var again = spec
        again.version = version
        again.command = recipe.command
        again.workdir = recipe.workdir
        again.environment = recipe.environment
        let restored = try await startRelease(again, &state)
        guard try await allHealthy(restored.instances, again, wait: spec.healthTimeout) else {
            await Self.stop(restored.instances)
            state.pending = nil
            try save(state)
            throw StepFailure("\(spec.service): \(version) could not be started again for a rollback; \(spec.version) and \(version) instances serve together", retryable: false)
        }
        try await context.checkLease()
        try await switchTraffic(spec.service, listen: spec.listen, ports: restored.ports, release: version, probe: spec.healthPath)
        await Self.stop(replacing)
        state.active = restored
        state.pending = nil
        try save(state)
        log("rolled back: \(version) serves again on ports \(restored.ports.map(String.init).joined(separator: ","))")
    }

    private func rolling(_ spec: Spec, _ state: inout LocalDeployment, rollbackOnFailure: Bool) async throws {
        var serving = state.active?.instances ?? []
        var fresh: [LocalDeployment.Instance] = []
        for index in 0..<spec.instances {
            try await context.checkLease()
            let instance = try await startInstance(spec)
            state.pending = LocalDeployment.Release(version: spec.version, instances: fresh + [instance])
            try save(state)
            guard try await allHealthy([instance], spec, wait: spec.healthTimeout) else {
                try await context.checkLease()
                await Self.stop([instance])
                let problem = "\(spec.service) \(spec.version): instance \(index + 1) of \(spec.instances) did not pass its health check"
                if fresh.isEmpty {
                    state.pending = nil
                    try save(state)
                    throw StepFailure("\(problem); nothing was replaced, \(state.active?.version ?? "nothing") still serves", retryable: false)
                }
                if rollbackOnFailure, let old = state.active?.version, let recipe = state.recipes?[old] {
                    try await restore(old, recipe, spec, replacing: fresh + serving, &state)
                    throw StepFailure("\(problem); rolled back: \(old) serves again", retryable: false)
                }
                state.pending = LocalDeployment.Release(version: spec.version, instances: fresh)
                try save(state)
                throw StepFailure("\(problem); \(fresh.count) new and \(serving.count) old instances serve", retryable: false)
            }
            fresh.append(instance)
            let old = serving.isEmpty ? nil : serving.removeFirst()
            try await context.checkLease()
            try await switchTraffic(spec.service, listen: spec.listen, ports: (fresh + serving).map(\.port),
                                    release: "\(spec.version)-\(index + 1)of\(spec.instances)", probe: spec.healthPath)
            if let old { await Self.stop([old]) }
            log("instance \(index + 1)/\(spec.instances) of \(spec.version) serving on port \(instance.port)")
        }
        await Self.stop(serving)
        // Rolling keeps no old release running: a rollback starts the previous version again.
        if let previous = state.previous { await Self.stop(previous.instances) }
        state.previous = nil
        state.active = LocalDeployment.Release(version: spec.version, instances: fresh)
        state.pending = nil
        if state.history.last != spec.version { state.history.append(spec.version) }
        state.remember(spec.version, spec.recipe)
        try save(state)
    }

    /// Back to the release before: at once when it is still running (inside its
    /// rollback window), else by starting that version again, blue-green.
    func rollback(_ spec: Spec, to version: String?) async throws -> StepOutputs {
        var state = try await recover(spec.service, listen: spec.listen, rollbackWindow: spec.rollbackWindow)
        // Where the service is served is the target's record, not the rollback step's to give; a step
        // that names an address must name that one (a service name on another address is another's).
        guard spec.listen.isEmpty || spec.listen == state.listen else {
            throw StepFailure("\(spec.service) serves on \(state.listen) on this target, not \(spec.listen); nothing was rolled back", retryable: false)
        }
        var spec = spec
        spec.listen = state.listen
        guard let active = state.active else {
            throw StepFailure("\(spec.service) has no deployed version on this target; nothing to roll back", retryable: false)
        }
        guard let target = version ?? state.rollbackVersion else {
            throw StepFailure("\(spec.service) has only ever run \(active.version); nothing to roll back to", retryable: false)
        }
        if let previous = state.previous, previous.version == target, try await allHealthy(previous.instances, spec) {
            try await context.checkLease()
            try await switchTraffic(spec.service, listen: spec.listen, ports: previous.ports, release: previous.version, probe: spec.healthPath)
            state.pending = LocalDeployment.Release(version: previous.version, instances: previous.instances)
            state.previous = nil
            _ = state.promotePending(keepUntilMs: WallClock.nowMs() + spec.rollbackWindow.milliseconds)
            try save(state)
            log("rolled \(spec.service) back from \(active.version) to \(target): traffic moved to the instances kept running")
        } else {
            // Started again as it was deployed; with.run only when the target never recorded how.
            var again = spec
            again.version = target
            if let recipe = state.recipes?[target] {
                again.command = recipe.command
                again.workdir = recipe.workdir
                again.environment = recipe.environment
            } else if spec.command.isEmpty {
                throw StepFailure("\(spec.service) \(target) is no longer running and this target did not record how it was started; give with.run", retryable: false)
            }
            try await blueGreen(again, &state)
            log("rolled \(spec.service) back from \(active.version) to \(target) by starting it again")
        }
        var rolledBack = outputs(spec, strategy: "blue-green", previous: active.version, state: state, result: "rolled_back")
        rolledBack["version"] = .string(target)
        return rolledBack
    }

    // MARK: State

    /// The service's state after finishing or undoing what an interrupted deploy left.
    private func recover(_ service: String, listen: String, rollbackWindow: Duration) async throws -> LocalDeployment {
        var state = try load(service) ?? LocalDeployment(service: service, listen: listen)
        let upstream = (try? String(contentsOfFile: configPath(service), encoding: .utf8)).map(NginxConfig.ports(inServiceConfig:)) ?? []
        switch state.recovery(upstreamPorts: upstream) {
        case .clean: break
        case .finishSwitch:
            log("an earlier attempt switched traffic to \(state.pending!.version) but did not record it; recording it now")
            let retired = state.promotePending(keepUntilMs: WallClock.nowMs() + rollbackWindow.milliseconds)
            try save(state)
            if let retired { await Self.stop(retired.instances) }
        case .discardPending:
            log("an earlier attempt left \(state.pending!.version) starting; it never served, stopping it")
            try await context.checkLease()
            // Rolling may have moved traffic to some new instances: keep those nginx serves.
            let serving = Set(upstream)
            await Self.stop(state.pending!.instances.filter { !serving.contains($0.port) })
            state.pending = nil
            try save(state)
        }
        if let expired = state.expired(nowMs: WallClock.nowMs()) {
            log("the rollback window of \(expired.version) has passed; stopping it")
            await Self.stop(expired.instances)
            state.previous = nil
            try save(state)
        }
        return state
    }

    private func load(_ service: String) throws -> LocalDeployment? {
        guard let data = FileManager.default.contents(atPath: statePath(service)) else { return nil }
        do {
            return try JSONDecoder().decode(LocalDeployment.self, from: data)
        } catch {
            throw StepFailure("\(statePath(service)) cannot be read (\(error)); move it aside to start the service's state afresh", retryable: false)
        }
    }

    /// Written whole or not at all, readable by this user only: the recipes hold the
    /// instances' environment, secrets named in with.env included (as a unit file would).
    private func save(_ state: LocalDeployment) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: serviceDirectory(state.service), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let path = statePath(state.service)
        try encoder.encode(state).write(to: URL(fileURLWithPath: path), options: .atomic)
        try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }

    // MARK: Instances

    private func startRelease(_ spec: Spec, _ state: inout LocalDeployment) async throws -> LocalDeployment.Release {
        var release = LocalDeployment.Release(version: spec.version, instances: [])
        for _ in 0..<spec.instances {
            try await context.checkLease()
            release.instances.append(try await startInstance(spec))
            state.pending = release
            try save(state)
        }
        log("started \(spec.version): ports \(release.ports.map(String.init).joined(separator: ","))")
        return release
    }

    /// Starts one instance in a session of its own, its output appended to a log file
    /// in the service's directory; returns once it is started (not yet healthy).
    private func startInstance(_ spec: Spec) async throws -> LocalDeployment.Instance {
        let port: Int
        do { port = try LoopbackPort.free() } catch { throw StepFailure("deploy: \(error)") }
        try FileManager.default.createDirectory(atPath: serviceDirectory(spec.service), withIntermediateDirectories: true)
        let logFile = serviceDirectory(spec.service) + "/\(spec.version)-\(port).log"
        var environment = baseEnvironment.merging(spec.environment) { $1 }
        environment["PORT"] = String(port)
        environment["GANTRY_SERVICE"] = spec.service
        environment["GANTRY_VERSION"] = spec.version
        environment["GANTRY_INSTANCE_RUN"] = spec.command
        environment["GANTRY_INSTANCE_LOG"] = logFile
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        guard let sh = ChildProcess.locate("sh", path: path), ChildProcess.locate("setsid", path: path) != nil else {
            throw StepFailure("deploy: sh and setsid (util-linux) must be installed on this worker", retryable: false)
        }
        // setsid: the instance leads a session (and process group) of its own, apart from the worker's.
        var launcher = ChildProcess(
            executable: sh,
            arguments: ["-c", #"setsid sh -c "$GANTRY_INSTANCE_RUN" >>"$GANTRY_INSTANCE_LOG" 2>&1 </dev/null & echo $!"#],
            environment: environment, workdir: spec.workdir
        )
        launcher.killOrphans = false
        let pid = PIDLine()
        let termination = try await launcher.run { line in pid.take(line) }
        guard termination.ending == .exited(0), let value = pid.value else {
            throw StepFailure("deploy: could not start an instance of \(spec.service) (\(termination.ending))")
        }
        return LocalDeployment.Instance(port: port, pid: value)
    }

    /// SIGTERM to each instance's process group, SIGKILL to what is left after five seconds.
    static func stop(_ instances: [LocalDeployment.Instance]) async {
        guard !instances.isEmpty else { return }
        for instance in instances where Self.isRunning(instance.pid) { kill(-instance.pid, SIGTERM) }
        // Waited for in a task of its own, which a canceled attempt (the usual reason to stop
        // instances) does not cancel: they still get their grace, and no thread of the pool is
        // held while they take it.
        await Task {
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline, instances.contains(where: { Self.isRunning($0.pid) }) {
                try? await Task.sleep(for: .milliseconds(50))
            }
        }.value
        for instance in instances where Self.isRunning(instance.pid) { kill(-instance.pid, SIGKILL) }
    }

    static func isRunning(_ pid: Int32) -> Bool {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    private func allHealthy(_ instances: [LocalDeployment.Instance], _ spec: Spec, wait: Duration = .zero) async throws -> Bool {
        let deadline = ContinuousClock.now + wait
        var pending = instances
        while true {
            var still: [LocalDeployment.Instance] = []
            for instance in pending {
                guard Self.isRunning(instance.pid) else {
                    log("instance on port \(instance.port) exited; see \(serviceDirectory(spec.service))/\(spec.version)-\(instance.port).log")
                    return false
                }
                let response = try? await http.send(HTTPRequest(url: "http://127.0.0.1:\(instance.port)\(spec.healthPath)", timeout: .seconds(2), connectTimeout: .seconds(1)))
                if response?.status != spec.expectStatus { still.append(instance) }
            }
            pending = still
            if pending.isEmpty { return true }
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    // MARK: nginx

    /// Writes the service's upstream, checks the whole configuration, and reloads
    /// nginx (starting it when it is not running). A configuration nginx refuses is
    /// put back and never loaded.
    private func switchTraffic(_ service: String, listen: String, ports: [Int], release: String, probe: String) async throws {
        let fm = FileManager.default
        for directory in ["services", "tmp"] {
            try fm.createDirectory(atPath: nginxPrefix + "/" + directory, withIntermediateDirectories: true)
        }
        try NginxConfig.main(prefix: nginxPrefix).write(toFile: nginxPrefix + "/nginx.conf", atomically: true, encoding: .utf8)
        let path = configPath(service)
        let before = try? String(contentsOfFile: path, encoding: .utf8)
        try NginxConfig.service(service, listen: listen, ports: ports, release: release).write(toFile: path, atomically: true, encoding: .utf8)
        do {
            try await nginx(["-t"])
        } catch {
            if let before { try? before.write(toFile: path, atomically: true, encoding: .utf8) } else { try? fm.removeItem(atPath: path) }
            throw error
        }
        if let master = nginxMaster {
            let before = Self.children(of: master)
            try await nginx(["-s", "reload"])
            // Until the old workers are gone they still accept connections with the old upstream.
            let deadline = ContinuousClock.now + .seconds(10)
            while before.contains(where: Self.isRunning), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            if before.contains(where: Self.isRunning) {
                log("old nginx workers are still finishing requests after 10s; new connections already get \(release)")
            }
        } else {
            log("starting nginx (prefix \(nginxPrefix))")
            try await nginx([])
        }
        // `nginx -s reload` only signals the master: wait until new connections get the new release.
        let deadline = ContinuousClock.now + .seconds(10)
        // One client (one thread) for every probe; `Connection: close` makes each probe a new
        // connection, which is what shows whether nginx's new workers answer.
        let client = HTTPClient(name: "gantry-deploy-probe")
        while true {
            let response = try? await client.send(HTTPRequest(
                url: "http://\(listen)\(probe)", headers: [("Connection", "close")], timeout: .seconds(2), connectTimeout: .seconds(1)))
            if response?.header("X-Gantry-Release") == release { return }
            guard ContinuousClock.now < deadline else {
                throw StepFailure("nginx on \(listen) did not start serving \(release) within 10s after the reload; see \(nginxPrefix)/error.log")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The pid of the running nginx master, if any.
    var nginxMaster: Int32? {
        guard let text = try? String(contentsOfFile: nginxPrefix + "/nginx.pid", encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), Self.isRunning(pid) else { return nil }
        return pid
    }

    /// The processes whose parent is `pid` (nginx's workers, for its master).
    static func children(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> Int32? in
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // After "pid (comm) ": state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }

    private func nginx(_ arguments: [String]) async throws {
        let path = baseEnvironment["PATH"].map { $0 + ":/usr/sbin:/sbin" } ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        guard let binary = ChildProcess.locate("nginx", path: path) else {
            throw StepFailure("deploy: nginx is not installed on this worker (apt-get install nginx)", retryable: false)
        }
        var process = ChildProcess(
            executable: binary, arguments: ["-p", nginxPrefix, "-c", nginxPrefix + "/nginx.conf", "-e", nginxPrefix + "/error.log"] + arguments,
            environment: ["PATH": path]
        )
        // nginx daemonizes: its master must outlive this command.
        process.killOrphans = false
        let lines = Lines()
        let termination = try await process.run { lines.append($0) }
        guard termination.ending == .exited(0) else {
            throw StepFailure("nginx \(arguments.joined(separator: " ")) \(termination.ending): \(lines.problem)")
        }
    }

    private func outputs(_ spec: Spec, strategy: String, previous: String?, state: LocalDeployment, result: String) -> StepOutputs {
        [
            "service": .string(spec.service), "version": .string(state.active?.version ?? spec.version),
            "previous_version": previous.map(JSONValue.string) ?? .null, "strategy": .string(strategy),
            "target": .string("local"), "result": .string(result), "listen": .string(spec.listen),
            "ports": .array((state.active?.ports ?? []).map { .number(Double($0)) }),
        ]
    }

    private func log(_ line: String) { context.log.write(line) }
}

/// The pid line of the instance launcher.
private final class PIDLine: @unchecked Sendable {
    private let lock = NSLock()
    private var pid: Int32?

    func take(_ line: String) {
        lock.withLock { if pid == nil { pid = Int32(line.trimmingCharacters(in: .whitespaces)) } }
    }

    var value: Int32? { lock.withLock { pid } }
}

/// The output lines of a command, for its error message.
private final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) { lock.withLock { lines.append(line) } }

    /// nginx's own complaint (`[emerg] …`), else its last line.
    var problem: String {
        lock.withLock { lines.first { $0.contains("[emerg]") || $0.contains("[alert]") } ?? lines.last ?? "" }
    }
}
