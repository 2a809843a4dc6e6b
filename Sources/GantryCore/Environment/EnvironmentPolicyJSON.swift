/// An environment policy as the API and `gantry environment show` print it.
public enum EnvironmentPolicyJSON {
    public static func json(_ policy: EnvironmentPolicy) -> JSONValue {
        func strings(_ list: [String]?) -> JSONValue { list.map { .array($0.map(JSONValue.string)) } ?? .null }
        var protection: [String: JSONValue] = [
            "confirm": policy.confirm.map(JSONValue.string) ?? .null,
            "promote_from": policy.promoteFrom.map(JSONValue.string) ?? .null,
            "refs": strings(policy.refs),
            "pipelines": strings(policy.pipelines),
            "approvals": .null,
        ]
        if let approvals = policy.approvals {
            protection["approvals"] = .object([
                "required": .number(Double(approvals.required)),
                "approvers": strings(approvals.approvers),
                "approvers_expanded": strings(policy.expand(approvals.approvers)),
                "distinct_from_submitter": .bool(approvals.distinctFromSubmitter),
                "timeout": .string(DurationParser.format(approvals.timeout)),
            ])
        }
        var targets: JSONValue = .null
        if let allowed = policy.targets {
            targets = .object([
                "local": allowed.localListen.map { .object(["listen": strings($0)]) } ?? .null,
                "kubernetes": allowed.kubernetes.map { list in .array(list.map { entry in
                    .object(["context": entry.context.map(JSONValue.string) ?? .null, "namespace": entry.namespace.map(JSONValue.string) ?? .null])
                }) } ?? .null,
                "s3": strings(allowed.s3),
            ])
        }
        return .object([
            "environment": .string(policy.name),
            "description": policy.description.map(JSONValue.string) ?? .null,
            "protection": .object(protection),
            "groups": .object(policy.groups.mapValues { .array($0.map(JSONValue.string)) }),
            "secrets": strings(policy.secrets),
            "exclusive_secrets": strings(policy.exclusiveSecrets),
            "inherit_env": strings(policy.inheritEnv),
            "pool": policy.pool.map(JSONValue.string) ?? .null,
            "concurrency": .object(["group": .string(policy.concurrencyGroup ?? policy.name)]),
            "targets": targets,
        ])
    }

    /// The policy in plain lines, each rule with what it means for a run.
    public static func lines(_ policy: EnvironmentPolicy) -> [String] {
        var out: [String] = ["environment \(policy.name)" + (policy.description.map { ": \($0)" } ?? "")]
        out.append("  confirm:      " + (policy.confirm.map { "submits must carry --confirm \"\($0)\"" } ?? "not required by the environment"))
        out.append("  promote_from: " + (policy.promoteFrom.map { "the SHA must have succeeded in \($0)" } ?? "none"))
        if let approvals = policy.approvals {
            let who = policy.expand(approvals.approvers)
            out.append("  approvals:    \(approvals.required) of " + (who.isEmpty ? "any approver token" : who.joined(separator: ", "))
                + (approvals.distinctFromSubmitter ? ", not the submitter" : "") + ", within \(DurationParser.format(approvals.timeout)); before every step")
        } else {
            out.append("  approvals:    none required by the environment")
        }
        out.append("  refs:         " + (policy.refs.map { $0.isEmpty ? "none allowed" : $0.joined(separator: ", ") } ?? "any"))
        out.append("  pipelines:    " + (policy.pipelines.map { $0.isEmpty ? "none allowed" : $0.joined(separator: ", ") } ?? "any"))
        out.append("  secrets:      " + (policy.secrets.map { $0.isEmpty ? "none" : $0.joined(separator: ", ") } ?? "any")
            + (policy.exclusiveSecrets.isEmpty ? "" : "; its own alone: " + policy.exclusiveSecrets.joined(separator: ", ")))
        out.append("  inherit_env:  " + (policy.inheritEnv.isEmpty ? "no GANTRY_* or AWS_* variable" : policy.inheritEnv.joined(separator: ", ")))
        out.append("  pool:         " + (policy.pool ?? "default"))
        out.append("  concurrency:  group \(policy.concurrencyGroup ?? policy.name)")
        if let targets = policy.targets {
            out.append("  targets:      local " + (targets.localListen.map { $0.joined(separator: ", ") } ?? "not allowed")
                + "; kubernetes " + (targets.kubernetes.map { $0.map { "\($0.context ?? "*")/\($0.namespace ?? "*")" }.joined(separator: ", ") } ?? "not allowed")
                + "; s3 " + (targets.s3.map { $0.joined(separator: ", ") } ?? "not allowed"))
        } else {
            out.append("  targets:      any")
        }
        return out
    }
}
