/// An environment's protection, held by the server and set by an admin
/// (`gantry environment apply`): what every run there must pass, whatever its
/// pipeline file says. A pipeline may add gates; it can never weaken these.
///
/// An absent list means "no restriction" (`refs`, `pipelines`, `secrets`, `targets`);
/// an empty list means "nothing is allowed".
public struct EnvironmentPolicy: Sendable, Equatable {
    /// The approval gate of every run (`protection.approvals`).
    public struct Approvals: Sendable, Equatable {
        public var required: Int
        /// Token names, or names of `groups`; empty means any approver token.
        public var approvers: [String]
        public var distinctFromSubmitter: Bool
        public var timeout: Duration

        public init(required: Int = 1, approvers: [String] = [], distinctFromSubmitter: Bool = false, timeout: Duration = .seconds(86_400)) {
            self.required = required
            self.approvers = approvers
            self.distinctFromSubmitter = distinctFromSubmitter
            self.timeout = timeout
        }
    }

    /// Where steps of its runs may act (`targets`). A kind of target that is not listed is not allowed.
    public struct Targets: Sendable, Equatable {
        /// `host:port` addresses local deployments may listen on; nil: the local target is not allowed.
        public var localListen: [String]?
        /// kubectl contexts and namespaces deployments may use; nil: the kubernetes target is not allowed.
        public var kubernetes: [KubernetesTarget]?
        /// `s3://bucket/prefix/` locations backups and restores may use; nil: backups are not allowed.
        public var s3: [String]?

        public init(localListen: [String]? = nil, kubernetes: [KubernetesTarget]? = nil, s3: [String]? = nil) {
            self.localListen = localListen
            self.kubernetes = kubernetes
            self.s3 = s3
        }
    }

    /// One allowed kubernetes destination; a nil field allows any value.
    public struct KubernetesTarget: Sendable, Equatable {
        public var context: String?
        public var namespace: String?

        public init(context: String? = nil, namespace: String? = nil) {
            self.context = context
            self.namespace = namespace
        }
    }

    public var name: String
    public var description: String?
    /// Text every submit must carry.
    public var confirm: String?
    /// An environment the SHA must have succeeded in first.
    public var promoteFrom: String?
    public var approvals: Approvals?
    /// Globs the run's ref must match; nil: any ref (or none).
    public var refs: [String]?
    /// Pipeline names allowed to run here; nil: any.
    public var pipelines: [String]?
    /// The only secret names steps of its runs may use (with `exclusiveSecrets`); nil: any.
    public var secrets: [String]?
    /// Secrets that belong to this environment alone: no other environment's run may name them,
    /// and no worker of another pool resolves them. (A name in `secrets` may be shared, such as
    /// a Slack webhook every environment posts to.)
    public var exclusiveSecrets: [String]
    /// Worker variables (`GANTRY_*`, `AWS_*`) a build step may inherit; others of those families never reach a child.
    public var inheritEnv: [String]
    /// The worker pool its steps go to.
    public var pool: String?
    /// The concurrency group of its runs; nil: the environment's name.
    public var concurrencyGroup: String?
    /// Named groups of approvers, usable in `approvals.approvers`.
    public var groups: [String: [String]]
    public var targets: Targets?
    /// Where each setting was written (`protection.refs` → line), to name it in a refusal.
    public var lines: [String: Int]

    public init(
        name: String, description: String? = nil, confirm: String? = nil, promoteFrom: String? = nil,
        approvals: Approvals? = nil, refs: [String]? = nil, pipelines: [String]? = nil, secrets: [String]? = nil,
        exclusiveSecrets: [String] = [], inheritEnv: [String] = [], pool: String? = nil, concurrencyGroup: String? = nil, groups: [String: [String]] = [:],
        targets: Targets? = nil, lines: [String: Int] = [:]
    ) {
        self.name = name
        self.description = description
        self.confirm = confirm
        self.promoteFrom = promoteFrom
        self.approvals = approvals
        self.refs = refs
        self.pipelines = pipelines
        self.secrets = secrets
        self.exclusiveSecrets = exclusiveSecrets
        self.inheritEnv = inheritEnv
        self.pool = pool
        self.concurrencyGroup = concurrencyGroup
        self.groups = groups
        self.targets = targets
        self.lines = lines
    }

    /// Whether steps of its runs may name the secret.
    public func allowsSecret(_ name: String) -> Bool {
        exclusiveSecrets.contains(name) || (secrets?.contains(name) ?? true)
    }

    /// The approvers' token names, with groups expanded (sorted, without repeats).
    public func expand(_ names: [String]) -> [String] {
        Set(names.flatMap { groups[$0] ?? [$0] }).sorted()
    }

    /// "environment production (policy line 7, protection.refs)": where a refusal comes from.
    public func place(_ field: String) -> String {
        // A nested field written inline (`targets: { local: … }`) has the line of what encloses it.
        var key = Substring(field)
        var line = lines[field]
        while line == nil, let dot = key.lastIndex(of: ".") {
            key = key[..<dot]
            line = lines[String(key)]
        }
        return "environment \(name) (" + (line.map { "policy line \($0), " } ?? "policy, ") + "\(field))"
    }
}

/// Names a submitter or an admin writes that end up in keys, configuration files or
/// command lines (pools, groups, environments, services, versions): a safe character set.
public enum SafeName {
    /// 1-64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
    public static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...64).contains(bytes.count), let first = bytes.first, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    public static let rule = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

/// A `listen` address: `host:port`, with a host of letters, digits, '.', '-' (or `[v6]`)
/// and a port 1-65535. Nothing else may reach an nginx `listen` or `proxy_pass` line.
public enum ListenAddress {
    /// The port of a `host:port`, as a number (`08300` is 8300).
    public static func port(_ text: String) -> Int? {
        guard isValid(text), let colon = text.lastIndex(of: ":") else { return nil }
        return Int(text[text.index(after: colon)...])
    }

    public static func isValid(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":") else { return false }
        let host = text[..<colon], port = text[text.index(after: colon)...]
        guard let number = Int(port), (1...65_535).contains(number), port.utf8.allSatisfy({ (48...57).contains($0) }) else { return false }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            let inner = host.dropFirst().dropLast()
            return !inner.isEmpty && inner.utf8.allSatisfy { isHex($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }
        }
        return (1...253).contains(host.utf8.count) && host.utf8.allSatisfy {
            isHex($0) || (UInt8(ascii: "g")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "G")...UInt8(ascii: "Z")).contains($0)
                || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        }
    }

    private static func isHex(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}
