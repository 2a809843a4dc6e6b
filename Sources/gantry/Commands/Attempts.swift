import ArgumentParser
import Foundation
import GantryCore
import GantryPostgres

struct Attempts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attempts",
        abstract: "Show a run's attempts from the ledger in Postgres."
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "The run id (a UUID, as submit or enqueue printed it).")
    var run: String

    @Option var output: OutputFormat = .text

    func validate() throws {
        guard Identifiers.isValidRunID(run.lowercased()) else {
            throw ValidationError("--run '\(run)': not a run id; run ids look like 0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b")
        }
    }

    func run() async throws {
        _ = connection.logger("gantry.attempts")
        let db = PostgresConnection(url: try connection.database(), applicationName: "gantry attempts")
        let reports: [RunReport]
        do { reports = try await RunReport.load([run.lowercased()], db: db) } catch { throw Failure("\(error)") }
        guard let report = reports.first else { throw Failure("no run \(run) in the database") }
        print(output == .json ? report.json : report.text)
    }
}
