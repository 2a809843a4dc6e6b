/// The one decider of what a run must pass: the environment's policy (held by the
/// server) joined with the pipeline file (sent by the submitter), the stricter of the
/// two winning everywhere. Pure: the API calls it at submit with the policy it loaded,
/// and stores what it returns; Postgres only checks the facts it needs a query for
/// (`promoteFrom`) and locks the concurrency group.
public enum EnvironmentRules {
    /// What a submit asks for, beyond the pipeline.
    public struct Request: Sendable, Equatable {
        public var environment: String?
        public var ref: String?
        public var confirm: String?
        public var submitter: String

        public init(environment: String?, ref: String?, confirm: String?, submitter: String) {
            self.environment = environment
            self.ref = ref
            self.confirm = confirm
            self.submitter = submitter
        }
    }

    /// The rules a run is held to, and the pipeline as it will run (approval gates raised
    /// to the policy, the environment's gate added when the file has none).
    public struct Effective: Sendable, Equatable {
        public var definition: PipelineDefinition
        /// Environments the SHA must have succeeded in, each.
        public var promoteFrom: [String]
        /// The concurrency group as stored: the policy's (an admin's name), otherwise the file's
        /// scoped to the environment (`staging/deploys`), otherwise the environment's name.
        public var concurrencyGroup: String?
        public var pool: String?
        /// The step where the environment's approvals are granted, when it requires them.
        public var gate: String?
    }

    /// A submit the rules refuse (422), with one line that names the rule's place.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { reason }
    }

    /// A stored concurrency group as people read it: a file's group without the environment
    /// prefix that scopes it (`staging/deploys` in staging reads `deploys`).
    public static func displayGroup(_ stored: String, environment: String?) -> String {
        let prefix = (environment ?? "-") + "/"
        return stored.hasPrefix(prefix) ? String(stored.dropFirst(prefix.count)) : stored
    }

    /// The id of the approval step the server adds when the pipeline has none.
    public static let gateStepID = "approval"

    /// Applies `policy` (nil: the environment has none) to a submit of `definition`.
    /// - Parameter others: the other environments' policies: what one of them lists (a secret, a
    ///   listen address, an S3 prefix, a kubernetes context) is theirs, and no other
    ///   environment's run may name it unless its own policy lists it too.
    public static func evaluate(
        _ definition: PipelineDefinition, policy: EnvironmentPolicy?, request: Request, others: [EnvironmentPolicy] = []
    ) -> Result<Effective, Refusal> {
        var definition = definition
        // The file's own gate settings, checked first: what every submit of it must carry.
        if let policy {
            if let allowed = policy.pipelines, !allowed.contains(definition.name) {
                return .failure(Refusal("\(policy.place("protection.pipelines")): pipeline \(definition.name) may not run here; allowed: \(list(allowed))"))
            }
            if let refs = policy.refs {
                guard let ref = request.ref, !ref.isEmpty else {
                    return .failure(Refusal("\(policy.place("protection.refs")): give the ref being deployed (--ref); it must match \(list(refs))"))
                }
                guard refs.contains(where: { PathGlob.matches($0, ref) }) else {
                    return .failure(Refusal("\(policy.place("protection.refs")): ref \(ref.prefix(200)) may not deploy here; allowed: \(list(refs))"))
                }
            }
        }
        // Confirmation: the environment's text, or the file's when the environment has none.
        if let required = policy?.confirm, let own = definition.confirm, own != required {
            return .failure(Refusal("gate confirm: the pipeline's gates.confirm differs from \(policy!.place("protection.confirm"))'s; remove it from the pipeline"))
        }
        if let confirm = policy?.confirm ?? definition.confirm, request.confirm != confirm {
            return .failure(Refusal(request.confirm == nil
                ? "gate confirm: pipeline \(definition.name) needs --confirm \"\(confirm)\""
                : "gate confirm: the confirmation text does not match; type exactly \"\(confirm)\""))
        }
        var promoteFrom: [String] = []
        for source in [policy?.promoteFrom, definition.promoteFrom].compactMap({ $0 }) where !promoteFrom.contains(source) {
            promoteFrom.append(source)
        }
        let steps = definition.steps + definition.onFailure + definition.finally
        let reserved = Reserved(others.filter { $0.name != request.environment }, except: policy)
        for step in steps {
            if let refusal = checkStep(step, policy: policy) ?? reserved.check(step) { return .failure(refusal) }
        }
        // Approvals: every named approver list expands the environment's groups.
        if let policy {
            for section in [\PipelineDefinition.steps, \.onFailure, \.finally] {
                for index in definition[keyPath: section].indices where definition[keyPath: section][index].kind == "approval" {
                    if case .array(let names)? = definition[keyPath: section][index].inputs["approvers"] {
                        definition[keyPath: section][index].inputs["approvers"] = .array(policy.expand(names.compactMap(\.stringValue)).map(JSONValue.string))
                    }
                }
            }
        }
        var gate: String?
        if let policy, let approvals = policy.approvals {
            switch placeGate(&definition, approvals: approvals, policy: policy) {
            case .success(let id): gate = id
            case .failure(let refusal): return .failure(refusal)
            }
        }
        let group: String?
        if let own = policy?.concurrencyGroup {
            group = own
        } else if let fileGroup = definition.concurrencyGroup {
            guard SafeName.isValid(fileGroup) else {
                return .failure(Refusal("concurrency.group '\(fileGroup.prefix(80))' is not a name: use \(SafeName.rule)"))
            }
            // Scoped: a file can only ever share a group with runs of its own environment.
            group = (request.environment ?? "-") + "/" + fileGroup
        } else {
            group = request.environment
        }
        return .success(Effective(definition: definition, promoteFrom: promoteFrom, concurrencyGroup: group, pool: policy?.pool, gate: gate))
    }

    // MARK: Steps

    /// A step's secrets, inherited variables and targets against the policy.
    static func checkStep(_ step: PipelineStep, policy: EnvironmentPolicy?) -> Refusal? {
        let inputs = JSONValue.object(step.inputs)
        if let policy, let allowed = policy.secrets {
            for expression in Expressions.references(in: inputs) + (step.condition.map { Expressions.expressions(in: $0) } ?? [])
            where expression.hasPrefix("secrets.") {
                let name = String(expression.dropFirst("secrets.".count))
                if !policy.allowsSecret(name) {
                    return Refusal("step '\(step.id)': secret \(name) is not one of \(policy.place("secrets"))'s: \(list(allowed + policy.exclusiveSecrets))")
                }
            }
        }
        if case .array(let names)? = step.inputs["inherit_env"] {
            for name in names.compactMap(\.stringValue) where name.hasPrefix("GANTRY_") || name.hasPrefix("AWS_") {
                if !(policy?.inheritEnv.contains(name) ?? false) {
                    let place = policy.map { "\($0.place("inherit_env")) does not list it" } ?? "the environment has no policy that lists it"
                    return Refusal("step '\(step.id)': with.inherit_env \(name): the worker's own credentials never reach a step; \(place)")
                }
            }
        }
        guard let targets = policy?.targets else { return nil }
        switch step.kind {
        case "deploy":
            let target = step.inputs["target"]?.stringValue ?? "local"
            if target == "local" {
                guard let allowed = targets.localListen else {
                    return Refusal("step '\(step.id)': \(policy!.place("targets")) allows no local deployments")
                }
                // A rollback acts on what a deploy started; it names no address.
                if let listen = step.inputs["listen"] {
                    guard let address = listen.stringValue, allowed.contains(address) else {
                        return Refusal("step '\(step.id)': with.listen \(listen.stringValue.map { String($0.prefix(80)) } ?? listen.jsonText) is not one of \(policy!.place("targets.local.listen"))'s: \(list(allowed))")
                    }
                }
            } else if target == "kubernetes" {
                guard let allowed = targets.kubernetes else {
                    return Refusal("step '\(step.id)': \(policy!.place("targets")) allows no kubernetes deployments")
                }
                let context = step.inputs["context"]?.stringValue, namespace = step.inputs["namespace"]?.stringValue
                let fits = allowed.contains { entry in
                    (entry.context == nil || entry.context == context) && (entry.namespace == nil || entry.namespace == namespace)
                }
                if !fits {
                    return Refusal("step '\(step.id)': context \(context ?? "(default)") and namespace \(namespace ?? "(default)") are not in \(policy!.place("targets.kubernetes"))")
                }
            }
        case "backup":
            let action = step.inputs["action"]?.stringValue ?? "backup"
            let field = action == "restore" ? "from" : "to"
            guard let allowed = targets.s3 else {
                return Refusal("step '\(step.id)': \(policy!.place("targets")) allows no backups or restores")
            }
            for key in ["endpoint", "region", "access_key_id", "secret_access_key"] where step.inputs[key] != nil {
                return Refusal("step '\(step.id)': with.\(key): \(policy!.place("targets.s3")) fixes where backups go; the worker's S3 settings apply")
            }
            guard let location = step.inputs[field]?.stringValue,
                  allowed.contains(where: { location.hasPrefix($0) }),
                  !location.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
                return Refusal("step '\(step.id)': with.\(field) must start with one of \(policy!.place("targets.s3"))'s prefixes, written out: \(list(allowed))")
            }
        default:
            break
        }
        return nil
    }

    // MARK: The approval gate

    /// Finds (and raises to the policy) the pipeline's approval step that comes before every
    /// other step, or adds the environment's own gate before the first step. Steps of
    /// `on_failure` and `finally` other than notifications also wait for it: a run refused
    /// at its gate must not run a rollback or a command the approvers never saw.
    static func placeGate(
        _ definition: inout PipelineDefinition, approvals: EnvironmentPolicy.Approvals, policy: EnvironmentPolicy
    ) -> Result<String, Refusal> {
        let ancestors = Self.ancestors(definition.steps)
        let candidates = definition.steps.filter { step in
            step.kind == "approval" && definition.steps.allSatisfy { $0.id == step.id || ancestors[$0.id, default: []].contains(step.id) }
        }
        let gateID: String
        let allIDs = Set((definition.steps + definition.onFailure + definition.finally).map(\.id))
        if let existing = candidates.first {
            // The gate itself must always run: a condition or a path filter would skip it, and a
            // skipped step counts as satisfied for the steps after it.
            if existing.condition != nil || !existing.paths.isEmpty {
                return .failure(Refusal("approval step '\(existing.id)' (line \(existing.line)) is the environment's gate and cannot have if: or when:; \(policy.place("protection.approvals")) requires it on every run"))
            }
            gateID = existing.id
            let index = definition.steps.firstIndex { $0.id == existing.id }!
            switch raise(definition.steps[index].inputs, to: approvals, policy: policy) {
            case .success(let inputs): definition.steps[index].inputs = inputs
            case .failure(let refusal): return .failure(refusal)
            }
        } else if let clash = definition.steps.first(where: { $0.id == gateStepID }) ?? definition.steps.first(where: { $0.kind == "approval" }) {
            let early = definition.steps.first { $0.id != clash.id && !ancestors[$0.id, default: []].contains(clash.id) }
            return .failure(Refusal("step '\(early?.id ?? clash.id)' (line \(early?.line ?? clash.line)) would start before approval step '\(clash.id)'; \(policy.place("protection.approvals")) requires approval before every step: put '\(clash.id)' first (every step needs it) or remove it and the server adds the gate"))
        } else if allIDs.contains(gateStepID) {
            return .failure(Refusal("a step of on_failure or finally is named '\(gateStepID)'; \(policy.place("protection.approvals")) adds its gate under that name: rename the step"))
        } else {
            gateID = gateStepID
            let inputs: [String: JSONValue]
            switch raise([:], to: approvals, policy: policy) {
            case .success(let raised): inputs = raised
            case .failure(let refusal): return .failure(refusal)
            }
            for index in definition.steps.indices where definition.steps[index].needs.isEmpty {
                definition.steps[index].needs = [gateID]
            }
            definition.steps.insert(PipelineStep(id: gateID, kind: "approval", inputs: inputs), at: 0)
        }
        for index in definition.onFailure.indices where definition.onFailure[index].kind != "notify" {
            definition.onFailure[index].needs.append(gateID)
        }
        for index in definition.finally.indices where definition.finally[index].kind != "notify" {
            definition.finally[index].needs.append(gateID)
        }
        return .success(gateID)
    }

    /// An approval step's inputs, raised to at least the policy: more approvals, fewer
    /// approvers (only those both name), distinct when either says so, the shorter wait.
    static func raise(
        _ inputs: [String: JSONValue], to approvals: EnvironmentPolicy.Approvals, policy: EnvironmentPolicy
    ) -> Result<[String: JSONValue], Refusal> {
        var inputs = inputs
        let required = max(inputs["required"]?.intValue ?? 1, approvals.required)
        let ownApprovers: [String]? = {
            guard case .array(let names)? = inputs["approvers"] else { return nil }
            return policy.expand(names.compactMap(\.stringValue))
        }()
        let policyApprovers = policy.expand(approvals.approvers)
        var approvers: [String]
        switch (ownApprovers, policyApprovers.isEmpty) {
        case (let own?, false): approvers = own.filter(policyApprovers.contains)
        case (let own?, true): approvers = own
        case (nil, _): approvers = policyApprovers
        }
        if ownApprovers != nil || !policyApprovers.isEmpty {
            guard approvers.count >= required else {
                return .failure(Refusal("\(policy.place("protection.approvals")): \(required) approval(s) required but only \(approvers.count) approver(s) are named by both the pipeline and the environment (\(list(approvers)))"))
            }
        } else {
            approvers = []
        }
        let ownTimeout = inputs["timeout"]?.stringValue.flatMap { try? DurationParser.parse($0) }
        let timeout = min(ownTimeout ?? approvals.timeout, approvals.timeout)
        inputs["required"] = .number(Double(required))
        if approvers.isEmpty { inputs["approvers"] = nil } else { inputs["approvers"] = .array(approvers.map(JSONValue.string)) }
        inputs["distinct_from_submitter"] = .bool((inputs["distinct_from_submitter"]?.boolValue ?? false) || approvals.distinctFromSubmitter)
        inputs["timeout"] = .string(DurationParser.format(timeout))
        inputs["environment_gate"] = .bool(true)
        return .success(inputs)
    }

    /// Each step's ancestors through `needs`.
    static func ancestors(_ steps: [PipelineStep]) -> [String: Set<String>] {
        let needs = Dictionary(steps.map { ($0.id, $0.needs) }, uniquingKeysWith: { first, _ in first })
        var result: [String: Set<String>] = [:]
        for step in steps {
            var seen: Set<String> = []
            var stack = step.needs
            while let next = stack.popLast() {
                if seen.insert(next).inserted { stack += needs[next] ?? [] }
            }
            result[step.id] = seen
        }
        return result
    }

    private static func list(_ names: [String]) -> String {
        names.isEmpty ? "(none)" : names.joined(separator: ", ")
    }
}

/// What other environments' policies keep to themselves: a run of any other environment may
/// not name it (unless its own policy lists it as well).
struct Reserved {
    var secrets: [String: String] = [:]
    var listen: [String: String] = [:]
    var s3: [(prefix: String, owner: String)] = []
    var contexts: [String: String] = [:]

    init(_ others: [EnvironmentPolicy], except own: EnvironmentPolicy?) {
        for other in others {
            for name in other.exclusiveSecrets where !(own?.exclusiveSecrets.contains(name) ?? false) { secrets[name] = other.name }
            for address in other.targets?.localListen ?? [] where !(own?.targets?.localListen?.contains(address) ?? false) { listen[address] = other.name }
            for prefix in other.targets?.s3 ?? [] where !(own?.targets?.s3?.contains(prefix) ?? false) { s3.append((prefix, other.name)) }
            for target in other.targets?.kubernetes ?? [] {
                if let context = target.context, !(own?.targets?.kubernetes?.contains { $0.context == context } ?? false) { contexts[context] = other.name }
            }
        }
    }

    func check(_ step: PipelineStep) -> EnvironmentRules.Refusal? {
        let inputs = JSONValue.object(step.inputs)
        // A place written as an expression is only known when the step starts: where other
        // environments reserve places of that sort, it must be written out to be checked now.
        func written(_ key: String, reserving: Bool) -> EnvironmentRules.Refusal? {
            guard reserving, let text = step.inputs[key]?.stringValue, text.contains("${{") else { return nil }
            return EnvironmentRules.Refusal("step '\(step.id)': with.\(key) must be written out, not computed: other environments reserve places of this sort and it is checked at submit")
        }
        for expression in Expressions.references(in: inputs) where expression.hasPrefix("secrets.") {
            let name = String(expression.dropFirst("secrets.".count))
            if let owner = secrets[name] { return refusal(step, "secret \(name)", owner, listKey: "exclusive_secrets") }
        }
        if step.kind == "deploy" {
            if let refusal = written("listen", reserving: !listen.isEmpty) ?? written("context", reserving: !contexts.isEmpty) { return refusal }
            // One port is one address to nginx, whatever the host is spelt as (localhost, 127.1, 08300).
            if let address = step.inputs["listen"]?.stringValue, let port = ListenAddress.port(address),
               let owner = listen.first(where: { ListenAddress.port($0.key) == port })?.value {
                return refusal(step, "listen \(address)", owner)
            }
            let isLocal = (step.inputs["target"]?.stringValue ?? "local") == "local"
            if isLocal, !listen.isEmpty, step.inputs["listen"] == nil {
                return EnvironmentRules.Refusal("step '\(step.id)': a local deploy or rollback must name with.listen here: other environments reserve addresses, and a service is known by its address")
            }
            if let context = step.inputs["context"]?.stringValue, let owner = contexts[context] { return refusal(step, "kubernetes context \(context)", owner) }
        }
        if step.kind == "backup" {
            // Where another environment keeps backups, a step cannot point the worker's S3 client
            // elsewhere either (an endpoint can turn any location into theirs).
            if !s3.isEmpty {
                for key in ["endpoint", "region", "access_key_id", "secret_access_key"] where step.inputs[key] != nil {
                    return EnvironmentRules.Refusal("step '\(step.id)': with.\(key): other environments reserve S3 locations, so the worker's S3 settings apply")
                }
            }
            for key in ["to", "from"] {
                guard let location = step.inputs[key]?.stringValue else { continue }
                // Judged by its written-out part: what an expression adds could land anywhere under it.
                let literal = location.firstRange(of: "${{").map { String(location[..<$0.lowerBound]) } ?? location
                if let entry = s3.first(where: { literal.hasPrefix($0.prefix) || $0.prefix.hasPrefix(literal) }) {
                    return refusal(step, "\(key) \(location.prefix(120))", entry.owner)
                }
            }
        }
        return nil
    }

    private func refusal(_ step: PipelineStep, _ what: String, _ owner: String, listKey: String = "targets") -> EnvironmentRules.Refusal {
        EnvironmentRules.Refusal("step '\(step.id)': \(what) belongs to environment \(owner) (its policy's \(listKey)); this environment's policy must list it there too")
    }
}

/// Who may decide an approval gate, read from the step's stored inputs (the settings
/// `EnvironmentRules` fixed at submit).
public struct ApprovalRule: Sendable, Equatable {
    /// Token names; empty: any approver token.
    public var approvers: [String]
    public var distinctFromSubmitter: Bool

    public init(inputs: [String: JSONValue]) {
        if case .array(let names)? = inputs["approvers"] { approvers = names.compactMap(\.stringValue) } else { approvers = [] }
        distinctFromSubmitter = inputs["distinct_from_submitter"]?.boolValue ?? false
    }

    /// Nil when `approver` may decide; otherwise why not, in one line.
    public func refusal(approver: String, submitter: String, step: String) -> String? {
        if distinctFromSubmitter && approver == submitter {
            return "\(approver) submitted this run and step \(step) needs an approver other than the submitter"
        }
        if !approvers.isEmpty && !approvers.contains(approver) {
            return "\(approver) is not an approver of step \(step); its approvers are \(approvers.joined(separator: ", "))"
        }
        return nil
    }
}
