import ArgumentParser
import Foundation
import GantryPostgres

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or upgrade the database schema.",
        discussion: """
            Versioned and transactional; a second run changes nothing. Run it as the \
            schema owner: --database-url, else $GANTRY_ADMIN_DATABASE_URL, else $GANTRY_DATABASE_URL.
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @Option var output: OutputFormat = .text

    func run() async throws {
        let logger = connection.logger("gantry.migrate")
        var options = connection
        if options.databaseURL == nil { options.databaseURL = ProcessInfo.processInfo.environment["GANTRY_ADMIN_DATABASE_URL"] }
        let db = PostgresConnection(url: try options.database(), applicationName: "gantry migrate")
        let report: Migrator.Report
        do { report = try await Migrator().migrate(db, logger: logger) } catch {
            throw Failure("\(error)")
        }
        switch output {
        case .json:
            print("{\"applied\":\(report.applied),\"version\":\(report.current)}")
        case .text:
            if report.applied.isEmpty {
                print("schema is up to date (version \(report.current))")
            } else {
                print("applied migrations \(report.applied.map(String.init).joined(separator: ", ")); schema is at version \(report.current)")
            }
        }
    }
}
