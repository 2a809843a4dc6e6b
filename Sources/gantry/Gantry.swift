import ArgumentParser
import Foundation
import GantryCore

/// The `gantry` command: every user action, each subcommand a thin shell that
/// builds services from the library modules and runs them.
@main
struct Gantry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gantry",
        abstract: "Deployment pipelines run by a fleet of workers, on Redis and Postgres.",
        discussion: """
            Run commands (submit, runs, run, logs, approve, reject, cancel, retry) are clients of the \
            dispatcher's API: GANTRY_URL and GANTRY_TOKEN. Fleet commands take GANTRY_REDIS_URL \
            (redis://[user:password@]host:port/db) and GANTRY_DATABASE_URL (a libpq URL). \
            Passwords and tokens are never printed. Exit status: 0 succeeded, 1 the run failed, \
            2 refused or canceled, 3 the API unreachable, 4 succeeded but a finally step failed, \
            64 a usage or configuration error (docs/ci.md).
            """,
        version: GantryVersion.current,
        subcommands: [
            Submit.self,
            Runs.self,
            ShowRun.self,
            Wait.self,
            Approve.self,
            Reject.self,
            Cancel.self,
            Retry.self,
            Logs.self,
            BackupCommand.self,
            TokenCommand.self,
            EnvironmentCommand.self,
            Migrate.self,
            DispatcherCommand.self,
            WorkerCommand.self,
            Enqueue.self,
            Attempts.self,
            Validate.self,
            Plan.self,
            DeadLetters.self,
            FleetCommand.self,
            QueuesCommand.self,
            PauseCommand.self,
            ResumeCommand.self,
            DrainCommand.self,
            Bench.self,
        ]
    )

    static func main() async {
        // hiredis writes with write(2): a closed socket must be an error, not a signal.
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as UsageError {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(ExitStatus.usage)
        } catch {
            exit(withError: error)
        }
    }
}
