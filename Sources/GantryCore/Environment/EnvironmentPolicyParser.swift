import Yams

/// Reads an environment policy file (`gantry environment apply FILE`), reporting every
/// problem as `file:line:column: message`, like the pipeline parser.
///
/// ```yaml
/// environment: production
/// description: customer-facing
/// protection:
///   confirm: "DEPLOY TO PRODUCTION"
///   promote_from: staging
///   approvals: { required: 1, approvers: [alice, release-managers], distinct_from_submitter: true, timeout: 4h }
///   refs: [main, "release/*"]
///   pipelines: [production]
/// groups: { release-managers: [bob, carol] }
/// secrets: [SLACK_WEBHOOK, PAGERDUTY_ROUTING_KEY]
/// inherit_env: [AWS_REGION]
/// pool: production
/// concurrency: { group: production }
/// targets:
///   local: { listen: ["127.0.0.1:8300"] }
///   kubernetes: [{ context: prod-eu, namespace: shop }]
///   s3: ["s3://gantry-backups/production/"]
/// ```
public struct EnvironmentPolicyParser: Sendable {
    public var limits: YAMLLimits

    public init(limits: YAMLLimits = YAMLLimits(maxBytes: 64 << 10)) {
        self.limits = limits
    }

    /// The policy when there is no problem, and every problem found.
    public func parse(_ text: String, file: String) -> (policy: EnvironmentPolicy?, diagnostics: [PipelineDiagnostic]) {
        let root: Node?
        switch BoundedYAML.compose(text, file: file, limits: limits) {
        case .success(let node): root = node
        case .failure(let problem): return (nil, [problem])
        }
        guard let root else {
            return (nil, [PipelineDiagnostic(file: file, line: 1, column: 1, message: "the file is empty; a policy needs at least 'environment'")])
        }
        var reader = PolicyReader(file: file)
        let policy = reader.policy(root)
        if reader.diagnostics.isEmpty, let policy { return (policy, []) }
        return (nil, reader.diagnostics.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
    }
}

private struct PolicyReader: NodeReading {
    let file: String
    var diagnostics: [PipelineDiagnostic] = []
    var lines: [String: Int] = [:]
    var approversNode: Node?

    init(file: String) { self.file = file }

    mutating func note(_ field: String, _ entry: (key: Node, value: Node)?) {
        if let line = entry?.key.mark?.line { lines[field] = line }
    }

    /// A list of names (pipelines, group members: token names), reporting the others.
    mutating func names(_ entry: (key: Node, value: Node)?, _ what: String) -> [String] {
        let list = strings(entry, what)
        for name in list where !Self.isTokenName(name) {
            report(entry?.value, "\(what): '\(name.prefix(80))' is not a name: use \(SafeName.rule)")
        }
        return list
    }

    mutating func name(_ entry: (key: Node, value: Node)?, _ what: String) -> String? {
        guard let text = string(entry, what) else { return nil }
        guard SafeName.isValid(text) else {
            report(entry?.value, "\(what) '\(text.prefix(80))' is not a name: use \(SafeName.rule)")
            return nil
        }
        return text
    }

    mutating func policy(_ root: Node) -> EnvironmentPolicy? {
        let keys = ["environment", "description", "protection", "groups", "secrets", "exclusive_secrets", "inherit_env", "pool", "concurrency", "targets"]
        guard let top = mapping(root, "the policy", keys: keys) else { return nil }
        guard top["environment"] != nil else {
            report(root, "missing key 'environment': name the environment, e.g. environment: production")
            return nil
        }
        let environmentName = name(top["environment"], "environment")
        var policy = EnvironmentPolicy(name: environmentName ?? "")
        policy.description = string(top["description"], "description")
        if let protection = top["protection"],
           let entries = mapping(protection.value, "protection", keys: ["confirm", "promote_from", "approvals", "refs", "pipelines"]) {
            note("protection.confirm", entries["confirm"])
            policy.confirm = string(entries["confirm"], "protection.confirm")
            if policy.confirm?.isEmpty == true { report(entries["confirm"]?.value, "protection.confirm is empty; write the text a submit must carry, or leave it out") }
            note("protection.promote_from", entries["promote_from"])
            policy.promoteFrom = name(entries["promote_from"], "protection.promote_from")
            if let approvals = entries["approvals"] {
                note("protection.approvals", approvals)
                policy.approvals = self.approvals(approvals.value)
            }
            if let refs = entries["refs"] {
                note("protection.refs", refs)
                policy.refs = strings(refs, "protection.refs")
            }
            if let pipelines = entries["pipelines"] {
                note("protection.pipelines", pipelines)
                policy.pipelines = names(pipelines, "protection.pipelines")
            }
        }
        if let groups = top["groups"], let mapping = groups.value.mapping {
            note("groups", groups)
            for (key, value) in mapping {
                guard let group = key.string, SafeName.isValid(group) else {
                    report(key, "groups: '\(key.string?.prefix(80) ?? "")' is not a group name: use \(SafeName.rule)")
                    continue
                }
                policy.groups[group] = names((key, value), "groups.\(group)")
            }
        } else if let groups = top["groups"] {
            report(groups.value, "groups must be a mapping of group names to lists of token names")
        }
        if let secrets = top["secrets"] {
            note("secrets", secrets)
            let list = strings(secrets, "secrets")
            for name in list where !Self.isSecretName(name) {
                report(secrets.value, "secrets: '\(name.prefix(80))' is not a secret name: capitals, digits and '_'")
            }
            policy.secrets = list
        }
        if let exclusive = top["exclusive_secrets"] {
            note("exclusive_secrets", exclusive)
            policy.exclusiveSecrets = strings(exclusive, "exclusive_secrets")
            for name in policy.exclusiveSecrets where !Self.isSecretName(name) {
                report(exclusive.value, "exclusive_secrets: '\(name.prefix(80))' is not a secret name: capitals, digits and '_'")
            }
        }
        if let inherit = top["inherit_env"] {
            note("inherit_env", inherit)
            policy.inheritEnv = strings(inherit, "inherit_env")
            for name in policy.inheritEnv where !Self.isSecretName(name) {
                report(inherit.value, "inherit_env: '\(name.prefix(80))' is not a variable name: capitals, digits and '_'")
            }
        }
        note("pool", top["pool"])
        policy.pool = name(top["pool"], "pool")
        if let concurrency = top["concurrency"], let entries = mapping(concurrency.value, "concurrency", keys: ["group"]) {
            note("concurrency.group", entries["group"])
            policy.concurrencyGroup = name(entries["group"], "concurrency.group")
        }
        if let targets = top["targets"] {
            note("targets", targets)
            policy.targets = self.targets(targets.value)
        }
        if let approvals = policy.approvals {
            for approver in approvals.approvers where !Self.isTokenName(approver) {
                report(approversNode, "protection.approvals.approvers: '\(approver.prefix(80))' is not a token or group name")
            }
            // Counted with the groups expanded: a group of three can meet `required: 2`.
            let people = policy.expand(approvals.approvers)
            if !people.isEmpty, people.count < approvals.required {
                report(approversNode, "protection.approvals: \(approvals.required) approvals required but the approvers name only \(people.count) people")
            }
        }
        policy.lines = lines
        return environmentName == nil ? nil : policy
    }

    mutating func approvals(_ node: Node) -> EnvironmentPolicy.Approvals? {
        let keys = ["required", "approvers", "distinct_from_submitter", "timeout"]
        guard let entries = mapping(node, "protection.approvals", keys: keys) else { return nil }
        var approvals = EnvironmentPolicy.Approvals()
        if let text = string(entries["required"], "protection.approvals.required") {
            if let number = Int(text), (1...20).contains(number) {
                approvals.required = number
            } else {
                report(entries["required"]?.value, "protection.approvals.required must be a whole number from 1 to 20")
            }
        }
        approvals.approvers = strings(entries["approvers"], "protection.approvals.approvers")
        approversNode = entries["approvers"]?.value
        approvals.distinctFromSubmitter = bool(entries["distinct_from_submitter"], "protection.approvals.distinct_from_submitter") ?? false
        if entries["timeout"] == nil {
            report(node, "protection.approvals has no timeout; every wait needs a deadline, e.g. timeout: 4h")
        } else if let timeout = duration(entries["timeout"], "protection.approvals.timeout") {
            if timeout <= .zero { report(entries["timeout"]?.value, "protection.approvals.timeout must be more than 0, e.g. 4h") }
            approvals.timeout = timeout
        }
        return approvals
    }

    mutating func targets(_ node: Node) -> EnvironmentPolicy.Targets? {
        guard let entries = mapping(node, "targets", keys: ["local", "kubernetes", "s3"]) else { return nil }
        var targets = EnvironmentPolicy.Targets()
        if let local = entries["local"], let fields = mapping(local.value, "targets.local", keys: ["listen"]) {
            let listen = strings(fields["listen"], "targets.local.listen")
            for address in listen where !ListenAddress.isValid(address) {
                report(fields["listen"]?.value, "targets.local.listen: '\(address.prefix(80))' is not host:port (e.g. 127.0.0.1:8300)")
            }
            targets.localListen = listen
        }
        if let kubernetes = entries["kubernetes"] {
            guard let list = kubernetes.value.sequence else {
                report(kubernetes.value, "targets.kubernetes must be a list of { context, namespace }")
                return targets
            }
            targets.kubernetes = list.compactMap { item in
                guard let fields = mapping(item, "targets.kubernetes[]", keys: ["context", "namespace"]) else { return nil }
                let context = name(fields["context"], "targets.kubernetes[].context")
                let namespace = name(fields["namespace"], "targets.kubernetes[].namespace")
                if context == nil, namespace == nil { report(item, "targets.kubernetes[]: name a context, a namespace or both") }
                return EnvironmentPolicy.KubernetesTarget(context: context, namespace: namespace)
            }
        }
        if let s3 = entries["s3"] {
            let prefixes = strings(s3, "targets.s3")
            for prefix in prefixes where !(prefix.hasPrefix("s3://") && prefix.hasSuffix("/") && prefix.count > 6) {
                report(s3.value, "targets.s3: '\(prefix.prefix(80))' must be s3://bucket/prefix/ ending with '/'")
            }
            targets.s3 = prefixes
        }
        return targets
    }

    /// What `gantry token create --name` accepts: a safe name that may also hold '@'.
    static func isTokenName(_ text: String) -> Bool {
        SafeName.isValid(String(text.map { $0 == "@" ? "." : $0 }))
    }

    static func isSecretName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 128 && text.utf8.allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (48...57).contains($0) || $0 == UInt8(ascii: "_")
        }
    }
}
