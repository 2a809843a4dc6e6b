import ArgumentParser
import Foundation
import GantryCore
import GantryHTTP
import GantryWorkers

/// `gantry backup list|restore|lifecycle`: what the backup steps wrote, read back
/// with the same S3 settings the workers use (AWS_* variables or flags).
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "List, restore and expire the backups that backup steps wrote to S3.",
        discussion: """
            S3 settings as the AWS SDKs read them: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
            AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (an S3-compatible \
            server, addressed path-style); --endpoint and --region override them.
            """,
        subcommands: [List.self, Restore.self, Lifecycle.self]
    )

    struct S3Options: ParsableArguments {
        @Option(help: "S3 endpoint URL (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS).")
        var endpoint: String?

        @Option(help: "Region (default: $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1).")
        var region: String?

        func client() throws -> S3Client {
            do {
                return S3Client(try S3Configuration.resolve(environment: ProcessInfo.processInfo.environment, endpoint: endpoint, region: region))
            } catch {
                throw Failure("\(error)")
            }
        }
    }

    static func location(_ text: String, argument: String) throws -> S3Location {
        guard let location = S3Location(text) else { throw ValidationError("\(argument) '\(text)': give an s3://bucket/key URL") }
        return location
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List backups under an s3:// prefix, with their size and checksum.")

        @Argument(help: "s3://bucket/prefix/")
        var prefix: String

        @OptionGroup var s3: S3Options

        @Option var output: OutputFormat = .text

        func run() async throws {
            let location = try BackupCommand.location(prefix, argument: "PREFIX")
            let client = try s3.client()
            let objects: [S3Client.Object]
            do { objects = try await client.list(bucket: location.bucket, prefix: location.key) } catch { throw Failure("\(error)") }
            let keys = Set(objects.map(\.key))
            for object in objects where !object.key.hasSuffix(".sha256") {
                let checksummed = keys.contains(object.key + ".sha256")
                let url = "s3://\(location.bucket)/\(object.key)"
                switch output {
                case .json:
                    print(JSONValue.object([
                        "url": .string(url), "size": .number(Double(object.size)),
                        "last_modified": .string(object.lastModified), "complete": .bool(checksummed),
                    ]).jsonText)
                case .text:
                    print("\(url)  \(object.size) bytes  \(object.lastModified)\(checksummed ? "" : "  (no checksum: incomplete)")")
                }
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a backup, check its SHA-256, then extract it or pipe it to a command.",
            discussion: "Nothing is extracted or piped unless the checksum written with the backup matches."
        )

        @Argument(help: "s3://bucket/key of the backup.")
        var url: String

        @Option(name: .customLong("to-path"), help: "Extract the tar.gz into this directory.")
        var toPath: String?

        @Option(name: .customLong("to-command"), help: "Feed the backup to this shell command's stdin (e.g. \"pg_restore -d app\").")
        var toCommand: String?

        @OptionGroup var s3: S3Options

        func validate() throws {
            guard (toPath == nil) != (toCommand == nil) else { throw ValidationError("give --to-path or --to-command") }
        }

        func run() async throws {
            let location = try BackupCommand.location(url, argument: "URL")
            let transfer = BackupTransfer(s3: try s3.client())
            let destination: BackupTransfer.Destination = toPath.map { .path($0) } ?? .command(toCommand!)
            do {
                _ = try await transfer.restore(
                    location, to: destination, scratchDirectory: NSTemporaryDirectory(),
                    environment: ProcessInfo.processInfo.environment
                ) { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
            } catch {
                throw Failure("\(error)")
            }
            print("restored \(location) to \(toPath ?? "the command")")
        }
    }

    struct Lifecycle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the bucket's lifecycle rules that expire backups by their retention_days tag.",
            discussion: "Replaces the bucket's lifecycle configuration: one rule per retention period, for objects under the prefix tagged gantry-retention-days=N."
        )

        @Argument(help: "s3://bucket/prefix/")
        var prefix: String

        @Option(help: "Retention periods in days, comma-separated (those the pipelines' retention_days use).")
        var days: String

        @OptionGroup var s3: S3Options

        func run() async throws {
            let location = try BackupCommand.location(prefix, argument: "PREFIX")
            let periods = days.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !periods.isEmpty, periods.allSatisfy({ $0 > 0 }) else { throw ValidationError("--days '\(days)': give days, e.g. 30,90") }
            do {
                try await s3.client().putLifecycle(bucket: location.bucket, xml: S3Client.retentionLifecycle(prefix: location.key, days: periods))
            } catch {
                throw Failure("\(error)")
            }
            print("lifecycle of \(location.bucket): \(periods.sorted().map { "expire gantry-retention-days=\($0) after \($0) days" }.joined(separator: "; "))")
        }
    }
}
