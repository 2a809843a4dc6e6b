/// `scan`'s `with:` (schema: `StepInputSchemas.scan`; read by ScanExecutor, its SecretScan
/// and VulnerabilityGate). Paths are resolved; the scanner's command stays as written (its
/// expressions become variables); what sets a gate's strength (`diff`, `exclude`, `format`,
/// `fail_on`) is read as written.
public struct ScanInputs: StepInputs {
    /// Accepted findings, each with a reason and an expiry.
    public var allowlist: String?
    public var secrets: SecretsGate?
    public var vulnerabilities: VulnerabilitiesGate?

    public enum CodingKeys: String, InputKey {
        case allowlist, secrets, vulnerabilities
    }

    public static var nested: [CodingKeys: any StepInputs.Type] {
        [.secrets: SecretsGate.self, .vulnerabilities: VulnerabilitiesGate.self]
    }

    /// The workspace, or only the lines a commit adds.
    public struct SecretsGate: StepInputs {
        /// Default the worker's directory.
        public var path: String?
        public var diff: Diff?
        /// Globs relative to path.
        public var exclude: [String]?

        public enum CodingKeys: String, InputKey {
            case path, diff, exclude

            public var reading: InputReading {
                switch self {
                case .path: .resolved
                case .diff, .exclude: .asWritten
                }
            }
        }

        public static var nested: [CodingKeys: any StepInputs.Type] { [.diff: Diff.self] }
    }

    /// `diff: true` (what the run's commit adds: SHA^ SHA), `false` (the workspace), or
    /// `{ base: REF }` (base...SHA, the ref resolved).
    public enum Diff: StepInputs, Equatable {
        case off
        case commit
        case base(String)

        public enum CodingKeys: String, InputKey {
            case base
        }

        public init(from decoder: any Decoder) throws {
            if let flag = try? decoder.singleValueContainer().decode(Bool.self) {
                self = flag ? .commit : .off
            } else if let mapping = try? decoder.container(keyedBy: CodingKeys.self) {
                self = .base(try mapping.decode(String.self, forKey: .base))
            } else {
                throw DecodingError.typeMismatch(Diff.self, DecodingError.Context(
                    codingPath: decoder.codingPath, debugDescription: "use true, false or { base: REF }"
                ))
            }
        }
    }

    /// A scanner's report, from a file or a command's stdout, against a threshold.
    public struct VulnerabilitiesGate: StepInputs {
        public var report: String?
        /// Its expressions become variables, as in a build's run.
        public var command: String?
        /// Default: told from the report.
        public var format: VulnerabilityReport.Format?
        /// Default high.
        public var failOn: Threshold?

        public enum CodingKeys: String, InputKey {
            case report, command, format
            case failOn = "fail_on"

            public var reading: InputReading {
                switch self {
                case .report: .resolved
                case .command: .shell
                case .format, .failOn: .asWritten
                }
            }
        }
    }

    /// The severity at and above which a finding closes the gate (`unknown` is counted, but is
    /// no threshold).
    public enum Threshold: String, InputWord {
        case critical, high, medium, low

        public var severity: VulnerabilityReport.Severity {
            switch self {
            case .critical: .critical
            case .high: .high
            case .medium: .medium
            case .low: .low
            }
        }
    }
}

extension VulnerabilityReport.Format: InputWord {}
