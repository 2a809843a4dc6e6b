import ArgumentParser
import Foundation
import GantryCore
import GantryPostgres
import GantryRedis

struct DeadLetters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List what is dead: deliveries that were not valid jobs, and steps that exhausted their attempts.",
        subcommands: [List.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead-lettered deliveries and dead steps.")

        @OptionGroup var connection: ConnectionOptions

        @Option(help: "The step kind whose dead-letter stream to read.")
        var kind: String = "noop"

        @Option(help: "At most this many of each.")
        var limit: Int = 50

        @Option var output: OutputFormat = .text

        func run() async throws {
            _ = connection.logger("gantry.dlq")
            let redis = RedisConnection(url: try connection.redis())
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry dlq")
            let letters: [EventEntry]
            let rows: PostgresRows
            do {
                letters = try await WorkQueue(keys: connection.keys).deadLetters(kind: kind, limit: limit, on: redis)
                rows = try await db.run(
                    """
                    SELECT run_id, step_id, attempt, coalesce(last_error, '') AS last_error, finished_at::text AS finished
                    FROM steps WHERE status = 'failed' AND kind = $1 AND namespace = $3 ORDER BY finished_at DESC LIMIT $2
                    """,
                    [kind, String(limit), connection.namespace]
                )
            } catch { throw Failure("\(error)") }
            for letter in letters {
                let fields = Dictionary(letter.fields, uniquingKeysWith: { a, _ in a })
                let reason = fields["reason"] ?? ""
                switch output {
                case .json: print(JSONValue.object(["type": .string("delivery"), "entry": .string(letter.id), "reason": .string(reason)]).jsonText)
                case .text: print("delivery \(letter.id)  \(reason)")
                }
            }
            for index in 0..<rows.count {
                let row = rows[index]
                let run = row.string("run_id") ?? "", step = row.string("step_id") ?? ""
                let attempt = row.int("attempt") ?? 0, error = row.string("last_error") ?? ""
                switch output {
                case .json:
                    print(JSONValue.object([
                        "type": .string("step"), "run": .string(run), "step": .string(step),
                        "attempts": .number(Double(attempt)), "error": .string(error),
                    ]).jsonText)
                case .text: print("step \(run)/\(step)  after \(attempt) attempts  \(error)")
                }
            }
        }
    }
}
