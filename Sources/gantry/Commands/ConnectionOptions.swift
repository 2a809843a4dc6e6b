import ArgumentParser
import Foundation
import GantryCore
import GantryPostgres
import GantryRedis
import Logging

/// Where Redis and Postgres are, shared by every command that talks to them.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: ArgumentHelp("Redis URL, redis://[user:password@]host:port/db.", discussion: "Default: $GANTRY_REDIS_URL, else redis://127.0.0.1:6379/0."))
    var redisURL: String?

    @Option(name: .customLong("database-url"), help: ArgumentHelp("Postgres URL, postgresql://user:password@host:port/db.", discussion: "Default: $GANTRY_DATABASE_URL."))
    var databaseURL: String?

    @Option(help: "Key namespace in Redis (the hash tag of every key); separate installations or tests use different ones.")
    var namespace: String = ProcessInfo.processInfo.environment["GANTRY_NAMESPACE"] ?? "gantry"

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["GANTRY_LOG_LEVEL"] ?? "info"

    func redis() throws -> RedisURL {
        let text = redisURL ?? ProcessInfo.processInfo.environment["GANTRY_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
        do { return try RedisURL(parsing: text) } catch {
            throw ValidationError("--redis-url / GANTRY_REDIS_URL: \(error.message)")
        }
    }

    func database() throws -> PostgresURL {
        guard let text = databaseURL ?? ProcessInfo.processInfo.environment["GANTRY_DATABASE_URL"] else {
            throw ValidationError("no database: pass --database-url or set GANTRY_DATABASE_URL (postgresql://user:password@host:port/db)")
        }
        do { return try PostgresURL(parsing: text) } catch {
            throw ValidationError("--database-url / GANTRY_DATABASE_URL: \(error.message)")
        }
    }

    var keys: QueueKeys { QueueKeys(namespace: namespace) }

    func logger(_ label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level '\(logLevel)': use trace, debug, info, notice, warning, error or critical")
        }
        guard namespace.range(of: "^[A-Za-z0-9_.-]{1,64}$", options: .regularExpression) != nil else {
            throw ValidationError("--namespace '\(namespace)': use 1-64 characters of letters, digits, '.', '-' or '_'")
        }
    }
}

/// `--output text|json`, for every command that prints results.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

/// What the run commands print: text for people, JSON, or only the run's id for scripts
/// (`RUN=$(gantry submit … --output id)`).
enum RunOutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
    case id
}

/// Parses a duration flag, naming the flag when it is wrong.
func parseDuration(_ text: String, flag: String) throws -> Duration {
    do { return try DurationParser.parse(text) } catch {
        throw ValidationError("\(flag): \(error)")
    }
}

/// A default process name: host and pid, unique on a machine.
func defaultProcessID(_ role: String) -> String {
    let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
    return "\(role)-\(host)-\(getpid())"
}

/// A command that failed: printed as one line `Error: …`, exit status 1.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A command given wrongly or not configured (a flag, a file it cannot read, no token):
/// exit status 64 (EX_USAGE), so that CI can tell it from a run that failed.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The exit statuses of the commands CI runs (docs/ci.md#exit-statuses).
enum ExitStatus {
    static let succeeded: Int32 = 0
    /// The run failed.
    static let failed: Int32 = 1
    /// The API refused the request, or the run was canceled.
    static let refused: Int32 = 2
    /// The API could not be reached (or answered with a server error).
    static let unreachable: Int32 = 3
    /// The run succeeded, but one of its `finally` steps failed.
    static let cleanupFailed: Int32 = 4
    /// A usage or configuration error: a flag, a file, the token.
    static let usage: Int32 = 64

    /// The status a finished run ends a command with.
    static func of(_ run: RunView) -> Int32 {
        switch run.status {
        case "succeeded": run.cleanupFailed == nil ? succeeded : cleanupFailed
        case "failed": failed
        default: refused
        }
    }
}

/// `user@host` of whoever runs the CLI: the actor recorded with a change an admin makes
/// through the database (environment policies, tokens).
func localActor() -> String {
    let environment = ProcessInfo.processInfo.environment
    let account = getpwuid(getuid()).flatMap { String(validatingCString: $0.pointee.pw_name) } ?? String(getuid())
    let user = environment["SUDO_USER"].map { "\($0)(sudo as \(account))" } ?? account
    return "\(user)@\(ProcessInfo.processInfo.hostName)"
}
