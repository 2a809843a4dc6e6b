import ArgumentParser
import Foundation
import GantryCore
import GantryDispatcher
import GantryPostgres
import GantryRuntime

/// `gantry token create|list|revoke`: API tokens, managed with database access
/// (an admin's job; CI only ever holds the token it is given).
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke API tokens (needs database access).",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token and print it once; only its SHA-256 is stored.",
            discussion: """
                Roles: submitter and approver apply to the environments given with --env ('*' for all); \
                operator (read, cancel, retry everywhere), auditor (read-only) and admin apply everywhere.
                Example: gantry token create --name ci-staging --role submitter --env development,staging
                """
        )

        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The token's name, recorded with every action it takes.") var name: String
        @Option(help: "submitter, approver, operator, auditor or admin; repeat for several.") var role: [String]
        @Option(help: "Comma-separated environments the submitter/approver roles apply to.") var env: String?
        @Option var output: OutputFormat = .text

        func validate() throws {
            guard name.range(of: "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$", options: .regularExpression) != nil else {
                throw ValidationError("--name '\(name)': use 1-64 letters, digits, '.', '_', '@' or '-'")
            }
            guard !role.isEmpty else { throw ValidationError("--role: give at least one of submitter, approver, operator, auditor, admin") }
            for value in role where Role(rawValue: value) == nil {
                throw ValidationError("--role '\(value)' is not one of submitter, approver, operator, auditor, admin")
            }
            let roles = role.compactMap(Role.init(rawValue:))
            if roles.contains(where: \.isScoped) && environments.isEmpty {
                throw ValidationError("--env: the \(roles.filter(\.isScoped).map(\.rawValue).joined(separator: " and ")) role needs the environments it applies to (or '*')")
            }
        }

        var environments: [String] {
            (env ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }

        func run() async throws {
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry token")
            let token = APITokens.generate()
            var random = SystemRandomNumberGenerator()
            let result = try await TokenStore().create(
                id: Identifiers.newRunID(nowMs: WallClock.nowMs(), using: &random), name: name,
                roles: Array(Set(role.compactMap(Role.init(rawValue:)))).sorted { $0.rawValue < $1.rawValue },
                environments: environments, hash: APITokens.hash(token), namespace: connection.namespace,
                actor: localActor(), on: db
            )
            if case .failure(let refusal) = result { throw Failure(refusal.reason) }
            switch output {
            case .json:
                print(JSONValue.object(["name": .string(name), "token": .string(token)]).jsonText)
            case .text:
                print(token)
                FileHandle.standardError.write(Data("token \(name) created; it is shown only this once (GANTRY_TOKEN for the CLI)\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (names, roles, environments; never the tokens).")
        @OptionGroup var connection: ConnectionOptions
        @Option var output: OutputFormat = .text

        func run() async throws {
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry token")
            for token in try await TokenStore().list(namespace: connection.namespace, on: db) {
                let created = isoTimestamp(ms: token.createdAtMs)
                let revoked = token.revokedAtMs.map { isoTimestamp(ms: $0) }
                switch output {
                case .json:
                    print(JSONValue.object([
                        "name": .string(token.name), "roles": .array(token.roles.map { .string($0.rawValue) }),
                        "environments": .array(token.environments.map(JSONValue.string)),
                        "created_at": .string(created), "revoked_at": revoked.map(JSONValue.string) ?? .null,
                    ]).jsonText)
                case .text:
                    let scope = token.environments.isEmpty ? "" : " env=\(token.environments.joined(separator: ","))"
                    print("\(token.name)  \(token.roles.map(\.rawValue).joined(separator: ","))\(scope)  created \(created)\(revoked.map { "  REVOKED \($0)" } ?? "")")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by name; it is refused from the next request on.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The token's name.") var name: String

        func run() async throws {
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry token")
            guard try await TokenStore().revoke(name: name, namespace: connection.namespace, actor: localActor(), on: db) else {
                throw Failure("no live token named \(name) (gantry token list shows them)")
            }
            print("revoked \(name)")
        }
    }
}

/// An ISO 8601 time with milliseconds.
func isoTimestamp(ms: Int64) -> String { Timestamp.iso8601(ms: ms) }
