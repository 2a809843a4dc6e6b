/// Which secret names a worker of one pool may resolve, from every environment's policy:
/// a pool holds only the secrets of the environments that name it, and never a secret
/// another pool's environment keeps to itself. Pure; the worker loads the policies.
public struct SecretScope: Sendable, Equatable {
    /// Names this pool may resolve; nil: any name not in `reserved`.
    public var allowed: Set<String>?
    /// Names other pools' environments keep to themselves (`exclusive_secrets`) and none of this pool's lists.
    public var reserved: Set<String>
    /// The worker's `AWS_*` variables its pool's steps may inherit: those the `inherit_env` of a
    /// policy serving the pool lists. `GANTRY_*` never reaches a step.
    public var inheritable: Set<String>

    public init(allowed: Set<String>?, reserved: Set<String>, inheritable: Set<String> = []) {
        self.allowed = allowed
        self.reserved = reserved
        self.inheritable = inheritable
    }

    /// No policy anywhere: every secret name, and no cloud credential.
    public static let unrestricted = SecretScope(allowed: nil, reserved: [])

    /// The scope of `pool` (nil: the default pool, which also serves environments without a policy).
    public static func of(pool: String?, policies: [EnvironmentPolicy]) -> SecretScope {
        let poolName = pool ?? "default"
        let serving = policies.filter { ($0.pool ?? "default") == poolName }
        let listedHere = Set(serving.flatMap { ($0.secrets ?? []) + $0.exclusiveSecrets })
        let exclusiveElsewhere = Set(policies.filter { ($0.pool ?? "default") != poolName }.flatMap(\.exclusiveSecrets))
        let reserved = exclusiveElsewhere.subtracting(listedHere)
        // A named pool that no environment names serves nothing; the default pool also serves
        // environments without a policy, which may name any secret.
        let open = poolName == "default" || serving.contains { $0.secrets == nil }
        return SecretScope(allowed: open ? nil : listedHere, reserved: reserved, inheritable: Set(serving.flatMap(\.inheritEnv)))
    }

    /// Whether a worker variable may reach a child process of this pool's steps (a build
    /// step's `inherit_env`, kubectl's environment): never `GANTRY_*`; `AWS_*` only when listed.
    public func mayInherit(_ variable: String) -> Bool {
        if variable.hasPrefix("GANTRY_") { return false }
        if variable.hasPrefix("AWS_") { return inheritable.contains(variable) }
        return true
    }

    /// Whether a step on this pool may have the secret resolved.
    public func permits(_ name: String) -> Bool {
        if reserved.contains(name) { return false }
        return allowed?.contains(name) ?? true
    }
}
