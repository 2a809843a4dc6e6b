import ArgumentParser
import Foundation
import GantryCore
import GantryDispatcher
import GantryPostgres

/// `gantry environment apply|list|show|history`: the environments' protection, held by the
/// server. Applying needs the admin database URL (the dispatcher's role may only read
/// policies); each apply is recorded with the OS user and host, before and after.
struct EnvironmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "environment",
        abstract: "Apply, list and show environment policies (approvals, refs, secrets, targets …).",
        discussion: "A pipeline file may add gates but never weaken its environment's policy. docs/environments.md has the file's keys.",
        subcommands: [Apply.self, List.self, Show.self, History.self]
    )

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy file and store it (admin; needs the owner's --database-url).",
            discussion: "Every problem is printed as file:line:column. The change (before and after) is recorded with who applied it."
        )

        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The policy file (YAML); '-' reads standard input.") var file: String
        @Flag(help: "Validate only; store nothing.") var dryRun = false

        func run() async throws {
            let text = try InputFile.read(file, flag: "environment apply", limit: 64 << 10)
            let (policy, diagnostics) = EnvironmentPolicyParser().parse(text, file: file)
            guard let policy else {
                for diagnostic in diagnostics { print(diagnostic) }
                throw ExitCode(1)
            }
            if dryRun {
                print("\(file): valid policy for environment \(policy.name)")
                return
            }
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry environment")
            let actor = localActor()
            let (changed, before) = try await EnvironmentStore().apply(
                name: policy.name, definition: text, sha256: APITokens.sha256Hex(text), actor: actor,
                namespace: connection.namespace, on: db
            )
            if !changed {
                print("environment \(policy.name): unchanged")
            } else {
                print("environment \(policy.name): \(before == nil ? "policy created" : "policy updated") by \(actor)")
                for line in EnvironmentPolicyJSON.lines(policy).dropFirst() { print(line) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the environments that have a policy.")
        @OptionGroup var connection: ConnectionOptions
        @Option var output: OutputFormat = .text

        func run() async throws {
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry environment")
            let stored = try await EnvironmentStore().list(namespace: connection.namespace, on: db)
            if stored.isEmpty, output == .text {
                print("no environment has a policy: every run is held only to its pipeline file's gates (gantry environment apply FILE)")
            }
            for entry in stored {
                switch output {
                case .json:
                    print(JSONValue.object([
                        "name": .string(entry.name), "sha256": .string(entry.sha256),
                        "updated_at": .string(isoTimestamp(ms: entry.updatedAtMs)), "updated_by": .string(entry.updatedBy),
                    ]).jsonText)
                case .text:
                    print("\(entry.name)  updated \(isoTimestamp(ms: entry.updatedAtMs)) by \(entry.updatedBy)  sha256 \(entry.sha256.prefix(12))")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an environment's policy, or say that it has none.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The environment's name.") var name: String
        @Option var output: OutputFormat = .text

        func run() async throws {
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry environment")
            guard let stored = try await EnvironmentStore().load(name, namespace: connection.namespace, on: db) else {
                switch output {
                case .json: print(JSONValue.object(["name": .string(name), "policy": .null]).jsonText)
                case .text: print("environment \(name) has no policy: its runs are held only to their pipeline file's gates (confirm, promote_from, approval steps)")
                }
                return
            }
            let (policy, diagnostics) = EnvironmentPolicyParser().parse(stored.definition, file: "environment \(name)")
            guard let policy else { throw Failure(diagnostics.first?.description ?? "the stored policy does not parse; apply it again") }
            switch output {
            case .json:
                print(JSONValue.object([
                    "name": .string(name), "sha256": .string(stored.sha256), "updated_at": .string(isoTimestamp(ms: stored.updatedAtMs)),
                    "updated_by": .string(stored.updatedBy), "policy": EnvironmentPolicyJSON.json(policy), "definition": .string(stored.definition),
                ]).jsonText)
            case .text:
                for line in EnvironmentPolicyJSON.lines(policy) { print(line) }
                print("  applied:      \(isoTimestamp(ms: stored.updatedAtMs)) by \(stored.updatedBy) (sha256 \(stored.sha256.prefix(12)))")
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every change of an environment's policy: who, when, before and after.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The environment's name.") var name: String
        @Option var output: OutputFormat = .text

        func run() async throws {
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry environment")
            let changes = try await EnvironmentStore().history(name, namespace: connection.namespace, on: db)
            if changes.isEmpty, output == .text { print("environment \(name): no policy was ever applied") }
            for change in changes {
                switch output {
                case .json:
                    print(JSONValue.object([
                        "actor": .string(change.actor), "at": .string(isoTimestamp(ms: change.atMs)),
                        "before": change.before.map(JSONValue.string) ?? .null, "after": .string(change.after),
                    ]).jsonText)
                case .text:
                    print("\(isoTimestamp(ms: change.atMs))  \(change.actor)  \(change.before == nil ? "created" : "updated") (\(change.after.utf8.count) bytes)")
                }
            }
        }
    }
}
