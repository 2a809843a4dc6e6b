/// `backup`'s `with:` (schema: `StepInputSchemas.backup`; read by BackupExecutor). Locations,
/// names and credentials are resolved; commands stay as written (their expressions become
/// variables); what shapes the upload's requests (the action, sizes, storage class, region,
/// which becomes part of the S3 host name) is read as written.
public struct BackupInputs: StepInputs {
    /// Default backup.
    public var action: Action?
    // A backup.
    public var source: Source?
    /// `s3://bucket/prefix/` or a whole key.
    public var to: String?
    /// Default `<step id>.tar.gz`, or `<step id>.out` for a command.
    public var name: String?
    public var retentionDays: Int?
    public var storageClass: String?
    /// Default 8.
    public var partSizeMB: Int?
    // A restore.
    /// `s3://bucket/key`, a backup step's `outputs.url`.
    public var from: String?
    public var toPath: String?
    /// Fed the backup on stdin.
    public var toCommand: String?
    // Either: where S3 is and who signs (default the worker's AWS_* variables).
    public var endpoint: String?
    public var region: String?
    public var accessKeyID: String?
    public var secretAccessKey: String?

    public enum CodingKeys: String, InputKey {
        case action, source, to, name
        case retentionDays = "retention_days"
        case storageClass = "storage_class"
        case partSizeMB = "part_size_mb"
        case from
        case toPath = "to_path"
        case toCommand = "to_command"
        case endpoint, region
        case accessKeyID = "access_key_id"
        case secretAccessKey = "secret_access_key"

        public var reading: InputReading {
            switch self {
            case .action, .retentionDays, .storageClass, .partSizeMB, .region: .asWritten
            case .toCommand: .shell
            case .source, .to, .name, .from, .toPath, .endpoint, .accessKeyID, .secretAccessKey: .resolved
            }
        }
    }

    public static var nested: [CodingKeys: any StepInputs.Type] { [.source: Source.self] }

    public enum Action: String, InputWord {
        case backup, restore
    }

    /// What a backup holds: a tar.gz of paths, or what a command writes to stdout.
    public struct Source: StepInputs {
        public var paths: [String]?
        public var command: String?

        public enum CodingKeys: String, InputKey {
            case paths, command

            public var reading: InputReading {
                switch self {
                case .paths: .resolved
                case .command: .shell
                }
            }
        }
    }
}
