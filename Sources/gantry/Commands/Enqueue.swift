import ArgumentParser
import Foundation
import GantryCore
import GantryDispatcher
import GantryPostgres
import GantryRedis
import GantryRuntime

struct Enqueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Create one-step runs of a kind and enqueue them.",
        discussion: """
            Prints one run id per line (or, with --output json, one object per line). \
            With --wait it shows progress on stderr until every run has ended, prints each \
            run with its attempts, and exits 1 if any run failed.

            Example: gantry enqueue --kind noop --count 10 --with '{"sleep_ms":5,"fail_first":1}' --wait
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "The step kind (e.g. noop).")
    var kind: String

    @Option(help: "How many runs to create.")
    var count: Int = 1

    @Option(name: .customLong("with"), help: "The step's inputs, a JSON object.")
    var inputs: String = "{}"

    @Option(name: .customLong("max-attempts"), help: "Attempts allowed, the first included.")
    var maxAttempts: Int = 3

    @Option(help: "Per-attempt timeout.")
    var timeout: String = "10m"

    @Option(help: "Delay before the first retry; doubles each time, with full jitter.")
    var backoff: String = "2s"

    @Option(name: .customLong("backoff-max"), help: "Upper bound of one retry delay.")
    var backoffMax: String = "1m"

    @Option(name: .customLong("retry-exit-codes"), help: "Only these exit codes are retried, comma-separated (default: any).")
    var retryExitCodes: String?

    @Flag(help: "Wait until every run has ended and report how (progress on stderr; says so when no worker of the kind is running).")
    var wait = false

    @Option var output: OutputFormat = .text

    func validate() throws {
        guard Identifiers.isValidKind(kind) else { throw ValidationError("--kind '\(kind)': a kind is 1-32 characters of a-z, 0-9, '-' or '_'") }
        // A run of a kind no worker takes would wait in its queue forever.
        let kinds = PipelineParser.standardKinds.subtracting(["approval"]).sorted()
        guard kinds.contains(kind) else {
            throw ValidationError("--kind '\(kind)': no such kind\(Suggestion.hint(for: kind, in: kinds)); known kinds: \(kinds.joined(separator: ", "))")
        }
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count \(count): use a number from 1 to 1000000") }
        guard (1...100).contains(maxAttempts) else { throw ValidationError("--max-attempts \(maxAttempts): use a number from 1 to 100") }
        guard JSONValue.parseObject(inputs) != nil else { throw ValidationError("--with: not a JSON object, e.g. '{\"sleep_ms\":5}'") }
        guard try parseDuration(timeout, flag: "--timeout") > .zero else {
            throw ValidationError("--timeout \(timeout): must be more than 0, e.g. 10m")
        }
        let initial = try parseDuration(backoff, flag: "--backoff"), cap = try parseDuration(backoffMax, flag: "--backoff-max")
        guard cap >= initial else {
            throw ValidationError("--backoff-max \(backoffMax) is below --backoff \(backoff); raise --backoff-max or lower --backoff")
        }
        _ = try exitCodes()
    }

    private func exitCodes() throws -> Set<Int32>? {
        guard let retryExitCodes else { return nil }
        var codes: Set<Int32> = []
        for part in retryExitCodes.split(separator: ",") {
            guard let code = Int32(part.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--retry-exit-codes: '\(part)' is not a number; write e.g. 1,75")
            }
            codes.insert(code)
        }
        return codes
    }

    func run() async throws {
        _ = connection.logger("gantry.enqueue")
        let redis = RedisConnection(url: try connection.redis())
        let db = PostgresConnection(url: try connection.database(), applicationName: "gantry enqueue")
        let policy = RetryPolicy(
            maxAttempts: maxAttempts, initial: try parseDuration(backoff, flag: "--backoff"),
            max: try parseDuration(backoffMax, flag: "--backoff-max"), jitter: .full, onExitCodes: try exitCodes()
        )
        let request = Enqueuer.Request(
            kind: kind, inputs: JSONValue.object(JSONValue.parseObject(inputs)!).jsonText, policy: policy,
            timeout: try parseDuration(timeout, flag: "--timeout"),
            pipeline: "enqueue:\(kind)", submitter: ProcessInfo.processInfo.environment["USER"] ?? "cli"
        )
        let ids: [String]
        do { ids = try await Enqueuer(keys: connection.keys).enqueue(request, count: count, redis: redis, db: db) } catch {
            throw Failure("\(error)")
        }
        guard wait else {
            for id in ids { print(output == .json ? "{\"run\":\"\(id)\",\"status\":\"running\"}" : id) }
            return
        }
        var unfinished = ids.count
        var lastShown = -1
        // Said once, if nothing has ended after a few seconds and no worker takes the kind.
        var checkWorkersAt: ContinuousClock.Instant? = .now + .seconds(3)
        while unfinished > 0 {
            do { unfinished = try await RunStore().unfinishedCount(ids, on: db) } catch {
                FileHandle.standardError.write(Data("waiting: \(error)\n".utf8))
            }
            if unfinished != lastShown {
                FileHandle.standardError.write(Data("\(ids.count - unfinished)/\(ids.count) runs ended\n".utf8))
                lastShown = unfinished
            }
            if let at = checkWorkersAt, ContinuousClock.now >= at {
                checkWorkersAt = nil
                let keys = connection.keys
                if unfinished == ids.count, (try? await FleetRegistry(keys: keys).liveWorkers(kind: kind, nowMs: WallClock.nowMs(), on: redis))?.isEmpty == true {
                    FileHandle.standardError.write(Data(
                        "no worker of kind \(kind) is running in namespace \(keys.namespace); the runs wait for one (gantry worker --kind \(kind) --namespace \(keys.namespace))\n".utf8
                    ))
                }
            }
            if unfinished > 0 { try await Task.sleep(for: .milliseconds(200)) }
        }
        let reports = try await RunReport.load(ids, db: db)
        for report in reports { print(output == .json ? report.json : report.text) }
        if reports.contains(where: { $0.run.status != "succeeded" }) { throw ExitCode(1) }
    }
}
