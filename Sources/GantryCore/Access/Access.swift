/// Who may do what through the API: roles, scoped to environments, as a pure decision.
///
/// - `submitter` (per environment): submit runs, read them, cancel and retry them;
/// - `approver` (per environment): approve or reject gates, read runs;
/// - `operator`: read, cancel and retry runs of every environment;
/// - `auditor`: read everything, change nothing;
/// - `admin`: everything.
public enum Role: String, Sendable, CaseIterable, Codable {
    case submitter, approver, `operator`, auditor, admin

    /// Whether the role's rights apply to one environment at a time.
    public var isScoped: Bool { self == .submitter || self == .approver }
}

/// Something a caller asks the API to do.
public enum APIAction: String, Sendable, CaseIterable {
    case submit
    case read
    case approve
    case cancel
    case retry
    /// Look at the fleet and the queues (workers, hosts, depths).
    case observe
    /// Steer them: pause and resume a queue, drain a worker.
    case operate

    /// The roles that grant the action.
    public var roles: [Role] {
        switch self {
        case .submit: [.submitter, .admin]
        case .read: [.submitter, .approver, .operator, .auditor, .admin]
        case .approve: [.approver, .admin]
        case .cancel, .retry: [.submitter, .operator, .admin]
        case .observe: [.operator, .auditor, .admin]
        case .operate: [.operator, .admin]
        }
    }
}

/// What one token may do: its name (recorded with every action), roles and environments.
public struct Grant: Sendable, Equatable {
    public var name: String
    public var roles: Set<Role>
    /// The environments the scoped roles apply to; `*` means every one.
    public var environments: Set<String>

    public init(name: String, roles: Set<Role>, environments: Set<String>) {
        self.name = name
        self.roles = roles
        self.environments = environments
    }

    /// Allows the action on a run of `environment` (nil: a run with no environment),
    /// or says why not in one line.
    public func decide(_ action: APIAction, environment: String?) -> Result<Void, AccessDenied> {
        let granting = action.roles.filter(roles.contains)
        guard !granting.isEmpty else {
            let have = roles.isEmpty ? "no roles" : "roles " + roles.map(\.rawValue).sorted().joined(separator: ", ")
            let need = action.roles.map(\.rawValue).joined(separator: " or ")
            return .failure(AccessDenied("token \(name) may not \(action.rawValue): it has \(have); \(action.rawValue) needs \(need)"))
        }
        if granting.contains(where: { !$0.isScoped }) || covers(environment) { return .success(()) }
        let target = environment.map { "in \($0)" } ?? "runs without an environment"
        let scope = environments.isEmpty ? "no environment" : environments.sorted().joined(separator: ", ")
        return .failure(AccessDenied("token \(name) may not \(action.rawValue) \(target): it is scoped to \(scope)"))
    }

    /// Whether some environment would accept its submit: checked before a pipeline without
    /// `--env` is parsed, so a token that may submit nowhere costs no parse.
    public var maySubmitSomewhere: Bool {
        if roles.contains(.admin) { return true }
        return roles.contains(.submitter) && !environments.isEmpty
    }

    /// The environments whose runs it may read; nil when it may read all of them.
    public var readableEnvironments: Set<String>? {
        if roles.contains(where: { !$0.isScoped }) || environments.contains("*") { return nil }
        return roles.isEmpty ? [] : environments
    }

    private func covers(_ environment: String?) -> Bool {
        if environments.contains("*") { return true }
        guard let environment else { return false }
        return environments.contains(environment)
    }
}

/// A refusal, with the reason the API returns (403).
public struct AccessDenied: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
