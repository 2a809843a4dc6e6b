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

        @Option(help: "Only this kind (a queue: build, or build@production for a pool's); default: every kind.")
        var kind: String?

        @Option(help: "At most this many of each.")
        var limit: Int = 50

        @Option var output: OutputFormat = .text

        func run() async throws {
            _ = connection.logger("gantry.dlq")
            let known = PipelineParser.standardKinds.subtracting(["approval"]).sorted()
            if let kind {
                let base = Identifiers.baseKind(kind)
                guard Identifiers.isValidQueueKind(kind), known.contains(base) else {
                    throw UsageError("--kind '\(kind)': not a step kind\(Suggestion.hint(for: base, in: known)); use one of \(known.joined(separator: ", ")), or KIND@POOL for a pool's queue")
                }
            }
            let redis = RedisConnection(url: try connection.redis())
            let db = PostgresConnection(url: try connection.database(), applicationName: "gantry dlq")
            var letters: [(kind: String, entry: EventEntry)] = []
            let rows: PostgresRows
            do {
                let queue = WorkQueue(keys: connection.keys)
                let kinds: [String]
                if let kind { kinds = [kind] } else { kinds = try await queue.deadLetterKinds(on: redis) }
                for queueKind in kinds {
                    letters += try await queue.deadLetters(kind: queueKind, limit: limit, on: redis).map { (queueKind, $0) }
                }
                // A pool's failed steps are listed under their kind (steps keep the pool apart).
                rows = try await db.run(
                    """
                    SELECT run_id, step_id, kind, attempt, coalesce(last_error, '') AS last_error, finished_at::text AS finished
                    FROM steps WHERE status = 'failed' AND ($1 = '' OR kind = $1) AND namespace = $3 ORDER BY finished_at DESC LIMIT $2
                    """,
                    [kind.map(Identifiers.baseKind) ?? "", String(limit), connection.namespace]
                )
            } catch { throw Failure("\(error)") }
            for (queueKind, letter) in letters {
                let fields = Dictionary(letter.fields, uniquingKeysWith: { a, _ in a })
                let reason = fields["reason"] ?? ""
                switch output {
                case .json:
                    print(JSONValue.object([
                        "type": .string("delivery"), "kind": .string(queueKind), "entry": .string(letter.id), "reason": .string(reason),
                    ]).jsonText)
                case .text: print("delivery \(queueKind) \(letter.id)  \(reason)")
                }
            }
            for index in 0..<rows.count {
                let row = rows[index]
                let run = row.string("run_id") ?? "", step = row.string("step_id") ?? "", stepKind = row.string("kind") ?? ""
                let attempt = row.int("attempt") ?? 0, error = row.string("last_error") ?? ""
                switch output {
                case .json:
                    print(JSONValue.object([
                        "type": .string("step"), "kind": .string(stepKind), "run": .string(run), "step": .string(step),
                        "attempts": .number(Double(attempt)), "error": .string(error),
                    ]).jsonText)
                case .text: print("step \(stepKind) \(run)/\(step)  after \(attempt) attempts  \(error)")
                }
            }
        }
    }
}
