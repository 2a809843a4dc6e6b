/// `deploy`'s `with:` (schema: `StepInputSchemas.deploy`; read by DeployExecutor, LocalTarget
/// and KubernetesTarget). Versions, images, addresses and names are resolved (each checked on
/// the worker after); the instance command stays as written (its expressions become
/// variables); the deploy's shape (target, action, strategy, instances, the services of a
/// rollback, the local health probe) is read as written.
public struct DeployInputs: StepInputs {
    /// Default local.
    public var target: Target?
    /// Default deploy.
    public var action: Action?
    public var service: String?
    /// A rollback of several services.
    public var services: [String]?
    /// Default rolling.
    public var strategy: Strategy?
    public var rollbackOnFailure: Bool?
    public var health: Health?
    // The local target.
    /// Default: image.
    public var version: String?
    /// Started once per instance, with PORT set.
    public var run: String?
    public var env: [String: String]?
    /// Default 1.
    public var instances: Int?
    /// Where nginx serves the service (host:port).
    public var listen: String?
    /// How long the old release keeps running after a switch (default 10m).
    public var rollbackWindow: Duration?
    public var workdir: String?
    public var toVersion: String?
    // The kubernetes target.
    public var image: String?
    /// Default: the service's name.
    public var container: String?
    public var namespace: String?
    public var context: String?

    public enum CodingKeys: String, InputKey {
        case target, action, service, services, strategy
        case rollbackOnFailure = "rollback_on_failure"
        case health, version, run, env, instances, listen
        case rollbackWindow = "rollback_window"
        case workdir
        case toVersion = "to_version"
        case image, container, namespace, context

        public var reading: InputReading {
            switch self {
            case .target, .action, .services, .strategy, .rollbackOnFailure, .instances: .asWritten
            case .run: .shell
            case .service, .health, .version, .env, .listen, .rollbackWindow, .workdir, .toVersion,
                 .image, .container, .namespace, .context: .resolved
            }
        }
    }

    public static var nested: [CodingKeys: any StepInputs.Type] { [.health: Health.self] }

    public enum Target: String, InputWord {
        case local, kubernetes
    }

    public enum Action: String, InputWord {
        case deploy, rollback
    }

    public enum Strategy: String, InputWord {
        case rolling
        case blueGreen = "blue-green"
    }

    /// Local: the probe of each instance (path, expect_status, timeout). Kubernetes: the
    /// rollout's timeout, and the URL a blue-green deploy must pass before its switch.
    public struct Health: StepInputs {
        public var path: String?
        public var url: String?
        public var expectStatus: Int?
        public var timeout: Duration?

        public enum CodingKeys: String, InputKey {
            case path, url
            case expectStatus = "expect_status"
            case timeout

            public var reading: InputReading {
                switch self {
                case .url: .resolved
                case .path, .expectStatus, .timeout: .asWritten
                }
            }
        }
    }
}
