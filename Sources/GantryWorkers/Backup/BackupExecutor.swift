import Foundation
import GantryCore
import GantryHTTP
import GantryProcess

/// The `backup` kind: a tar.gz of paths, or a command's output, streamed to S3;
/// and, with `action: restore`, back.
///
/// ```yaml
/// - id: backup
///   kind: backup
///   with:
///     source: { paths: [/var/lib/app/uploads, config] }      # a tar.gz of these
///     # source: { command: "pg_dump --format=custom app" }   # or what this writes to stdout
///     to: "s3://backups/prod/${{ run.id }}/"                  # a prefix (ending in /) or a full key
///     name: uploads.tar.gz         # default: <step id>.tar.gz, or <step id>.out for a command
///     retention_days: 90           # tagged gantry-retention-days=90 (see gantry backup lifecycle)
///     storage_class: STANDARD_IA
///     endpoint: http://minio:9000  # default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS
///     region: eu-west-1            # default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
///     access_key_id: "${{ secrets.S3_KEY_ID }}"          # default: AWS_ACCESS_KEY_ID of the worker
///     secret_access_key: "${{ secrets.S3_SECRET }}"      # default: AWS_SECRET_ACCESS_KEY
/// - id: restore
///   kind: backup
///   with: { action: restore, from: "${{ steps.backup.outputs.url }}", to_path: /srv/restore }   # or to_command: "pg_restore -d app"
/// ```
/// Outputs of a backup: `url`, `size`, `sha256`, `parts`; of a restore: `url`,
/// `size`, `sha256`, `restored_to`.
public struct BackupExecutor: StepExecutor {
    public let kind = "backup"

    private let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public func execute(_ context: StepContext) async throws -> StepOutputs {
        let inputs = try context.decodeInputs(BackupInputs.self)
        let s3 = try client(context, inputs)
        let partSize = inputs.partSizeMB.map { $0 << 20 } ?? 8 << 20
        let transfer = BackupTransfer(s3: s3, partSize: partSize)
        switch inputs.action ?? .backup {
        case .backup: return try await backup(context, inputs, transfer)
        case .restore: return try await restore(context, inputs, transfer)
        }
    }

    private func backup(_ context: StepContext, _ inputs: BackupInputs, _ transfer: BackupTransfer) async throws -> StepOutputs {
        guard let to = inputs.to, var location = S3Location(to) else {
            throw StepFailure("with.to: give an s3://bucket/prefix/ URL", retryable: false)
        }
        guard let source = inputs.source else {
            throw StepFailure("with.source: give { paths: [...] } or { command: \"…\" }", retryable: false)
        }
        let environment = ShellCommand.baseEnvironment(context, workerEnvironment: self.environment)
        let producer: ChildProcess
        let defaultName: String
        switch (source.paths, source.command) {
        case (let list?, nil) where !list.isEmpty:
            let paths = try list.enumerated().map { index, path -> String in
                guard !path.isEmpty else {
                    throw StepFailure("with.source.paths[\(index)] is not a path", retryable: false)
                }
                guard FileManager.default.fileExists(atPath: path) else {
                    throw StepFailure("with.source.paths[\(index)] '\(path)': no such file or directory on the worker", retryable: false)
                }
                return path
            }
            guard let tar = ChildProcess.locate("tar", path: environment["PATH"]) else {
                throw StepFailure("backup: tar is not installed on this worker", retryable: false)
            }
            producer = ChildProcess(executable: tar, arguments: ["-czf", "-", "--"] + paths, environment: environment)
            defaultName = "\(context.job.stepID).tar.gz"
        case (nil, let script?):
            let command = try ShellCommand(script, field: "with.source.command", shellName: nil, context: context, path: environment["PATH"] ?? "")
            producer = ChildProcess(executable: command.executable, arguments: command.arguments,
                                    environment: environment.merging(command.variables) { $1 })
            defaultName = "\(context.job.stepID).out"
        default:
            throw StepFailure("with.source: give either paths (a list) or command", retryable: false)
        }
        if location.key.isEmpty || location.key.hasSuffix("/") {
            location.key += inputs.name ?? defaultName
        }
        var headers: [(name: String, value: String)] = [
            ("x-amz-tagging", BackupTransfer.tags(retentionDays: inputs.retentionDays, run: context.job.runID, step: context.job.stepID)),
            ("x-amz-meta-gantry-run", context.job.runID),
        ]
        if let storageClass = inputs.storageClass { headers.append(("x-amz-storage-class", storageClass)) }
        context.log.write("backing up to \(location)")
        let uploaded = try await transfer.upload(from: producer, to: location, headers: headers, log: context.log) {
            try await context.checkLease()
        }
        context.log.write("verified \(location): \(uploaded.size) bytes in \(uploaded.parts) part\(uploaded.parts == 1 ? "" : "s"), sha256 \(uploaded.sha256)")
        return [
            "url": .string(location.description), "size": .number(Double(uploaded.size)),
            "sha256": .string(uploaded.sha256), "parts": .number(Double(uploaded.parts)),
        ]
    }

    private func restore(_ context: StepContext, _ inputs: BackupInputs, _ transfer: BackupTransfer) async throws -> StepOutputs {
        guard let from = inputs.from, let location = S3Location(from), !location.key.isEmpty else {
            throw StepFailure("with.from: give the s3:// URL of a backup (a backup step's outputs.url)", retryable: false)
        }
        let toPath = inputs.toPath
        let toCommand = inputs.toCommand
        guard (toPath == nil) != (toCommand == nil) else {
            throw StepFailure("with: give to_path (a directory to extract into) or to_command (fed the backup on stdin)", retryable: false)
        }
        let scratch = try Scratch(for: context.job)
        defer { scratch.remove() }
        try await context.checkLease()
        var environment = ShellCommand.baseEnvironment(context, workerEnvironment: self.environment)
        let destination: BackupTransfer.Destination
        if let toPath {
            destination = .path(toPath)
        } else {
            // Expressions in the command become variables, as in build.
            let command = try ShellCommand(toCommand!, field: "with.to_command", shellName: "sh", context: context, path: environment["PATH"] ?? "")
            environment.merge(command.variables) { $1 }
            destination = .command(command.arguments.last!)
        }
        let log = context.log
        let (size, sha256) = try await transfer.restore(
            location, to: destination, scratchDirectory: scratch.directory, environment: environment
        ) { log.write($0) }
        context.log.write("restored to \(toPath ?? "with.to_command")")
        return [
            "url": .string(location.description), "size": .number(Double(size)), "sha256": .string(sha256),
            "restored_to": .string(toPath ?? "command"),
        ]
    }

    private func client(_ context: StepContext, _ inputs: BackupInputs) throws -> S3Client {
        let id = inputs.accessKeyID
        let secret = inputs.secretAccessKey
        guard (id == nil) == (secret == nil) else {
            throw StepFailure("with: give both access_key_id and secret_access_key, or neither (the worker's AWS_* variables)", retryable: false)
        }
        for (field, value) in [("access_key_id", id), ("secret_access_key", secret)] {
            if let value, let expression = Expressions.references(in: .string(value)).first {
                throw StepFailure("with.\(field): '${{ \(expression) }}' has no value here", retryable: false)
            }
        }
        do {
            let configuration = try S3Configuration.resolve(
                environment: environment, endpoint: inputs.endpoint,
                region: inputs.region,
                credentials: id.map { AWSCredentials(accessKeyID: $0, secretAccessKey: secret!) }
            )
            return S3Client(configuration)
        } catch {
            throw StepFailure("backup: \(error)", retryable: false)
        }
    }
}
