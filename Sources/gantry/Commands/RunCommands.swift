import ArgumentParser
import Foundation
import GantryCore
import GantryHTTP

/// `gantry submit`: the command CI runs. Exits 0 when the run succeeds (or, without
/// --wait, when it is accepted), 1 when it fails, 2 when it is canceled or refused.
struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a pipeline run to the dispatcher's API; with --wait, follow it to the end.",
        discussion: """
            Exit status: 0 succeeded (or accepted, without --wait), 1 failed, 2 canceled or refused, \
            3 the API could not be reached. Needs GANTRY_URL and GANTRY_TOKEN (a submitter token for the environment).
            """
    )

    @OptionGroup var api: APIOptions
    @Option(help: "The pipeline file (YAML).") var pipeline: String
    @Option(help: "The environment; must match the pipeline's when it names one.") var env: String?
    @Option(help: "The commit to deploy (7-64 hex characters).") var sha: String
    @Option(help: "The branch or tag.") var ref: String?
    @Option(help: "The confirmation text the pipeline's gates.confirm asks for.") var confirm: String?
    @Option(name: .customLong("changed-files"), help: "A file listing the changed paths, one per line ('-' for stdin), for when.paths.")
    var changedFiles: String?
    @Option(help: "A run parameter NAME=VALUE; repeat for several.") var param: [String] = []
    @Option(name: .customLong("idempotency-key"), help: "Submitting again with the same key returns the same run.")
    var idempotencyKey: String?
    @Flag(help: "Follow the run, printing step states, and exit with its outcome.") var wait = false
    @Option var output: OutputFormat = .text

    func run() async throws {
        let client = try api.client()
        var body: [String: JSONValue] = [
            "pipeline": .string(try InputFile.read(pipeline, flag: "--pipeline")),
            "pipeline_file": .string(pipeline),
            "sha": .string(sha),
        ]
        if let env { body["environment"] = .string(env) }
        if let ref { body["ref"] = .string(ref) }
        if let confirm { body["confirm"] = .string(confirm) }
        if let idempotencyKey { body["idempotency_key"] = .string(idempotencyKey) }
        var params: [String: JSONValue] = [:]
        for pair in param {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw Failure("--param '\(pair)': write NAME=VALUE")
            }
            params[String(pair[..<equals])] = .string(String(pair[pair.index(after: equals)...]))
        }
        if !params.isEmpty { body["params"] = .object(params) }
        if let changedFiles {
            let text = try InputFile.read(changedFiles, flag: "--changed-files", limit: 8 << 20)
            body["changed_files"] = .array(text.split(whereSeparator: \.isNewline).map { .string(String($0).trimmingCharacters(in: .whitespaces)) })
        }
        let created: RunView
        do {
            created = try await client.call(.post, "/v1/runs", body: body, as: RunView.self).value
        } catch let failure as APIFailure {
            FileHandle.standardError.write(Data("Error: \(failure.message)\n".utf8))
            throw ExitCode(failure.isRefusal ? 2 : 3)
        }
        guard wait else {
            switch output {
            case .json: print(created.jsonText)
            case .text: print(RunPrinter.summary(created))
            }
            return
        }
        let final = try await follow(created, client: client)
        switch output {
        case .json: print(final.jsonText)
        case .text: print(RunPrinter.describe(final))
        }
        switch final.status {
        case "succeeded": return
        case "failed": throw ExitCode(1)
        default: throw ExitCode(2)
        }
    }

    /// Prints each step's state as it changes: plain time-stamped lines in CI logs, plus a
    /// progress line rewritten in place on a terminal. With --output json, progress goes to stderr.
    private func follow(_ run: RunView, client: APIClient) async throws -> RunView {
        let terminal = isatty(STDOUT_FILENO) == 1 && output == .text
        let sink: (String) -> Void = output == .json
            ? { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            : { StandardOutput.write($0 + "\n") }
        if output == .text { print("run \(run.id) submitted: \(run.pipeline)\(run.environment.map { " → \($0)" } ?? "")") }
        var last: RunView?
        let final = try await client.follow(run.id) { view in
            let time = String(Timestamp.iso8601(ms: WallClock.nowMs()).dropFirst(11).prefix(8))
            if terminal { StandardOutput.write("\r\u{1B}[K") }
            for line in RunPrinter.changes(from: last, to: view) {
                if terminal { StandardOutput.write("\(time) \(line)\n") } else { sink("\(time) \(line)") }
            }
            if terminal { StandardOutput.write(RunPrinter.progress(view)) }
            last = view
        }
        if terminal { StandardOutput.write("\r\u{1B}[K") }
        return final
    }
}

/// `gantry runs`: the latest runs the token may read.
struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List runs, newest first, with what waiting runs wait for.")
    @OptionGroup var api: APIOptions
    @Option(help: "Only this environment.") var env: String?
    @Option(help: "Only this status: waiting, running, succeeded, failed, canceled.") var status: String?
    @Option var limit: Int = 20
    @Option var output: OutputFormat = .text

    struct Listing: Decodable { var runs: [RunView] }

    func run() async throws {
        var query: [String] = ["limit=\(limit)"]
        if let env { query.append("env=\(percentEncoded(env))") }
        if let status { query.append("status=\(percentEncoded(status))") }
        let listing = try await perform { try await api.client().call(.get, "/v1/runs?" + query.joined(separator: "&"), as: Listing.self).value }
        for run in listing.runs {
            print(output == .json ? run.jsonText : RunPrinter.summary(run))
        }
    }
}

/// `gantry run RUN`: one run with its DAG, attempts and approvals.
struct ShowRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Show a run: each step's state, attempts, durations and why it waits.")
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option var output: OutputFormat = .text

    func run() async throws {
        let view = try await perform { try await api.client().call(.get, "/v1/runs/\(percentEncoded(id))", as: RunView.self).value }
        print(output == .json ? view.jsonText : RunPrinter.describe(view))
    }
}

/// `gantry logs RUN --step ID`: a step's log, live with --follow.
struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a step's log (its latest attempt, or --attempt N); --follow keeps printing until the attempt ends.",
        discussion: "Lines come from the live log in Redis (kept a week); after that, from the excerpt the ledger keeps."
    )
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option(help: "The step's id.") var step: String
    @Option(help: "The attempt (default: the latest).") var attempt: Int?
    @Flag(name: [.short, .long], help: "Keep printing new lines until the attempt ends.") var follow = false

    func run() async throws {
        try await perform { try await api.client().log(percentEncoded(id), step: percentEncoded(step), attempt: attempt, follow: follow) }
    }
}

/// What `gantry approve` and `gantry reject` take, and the request both send.
struct DecisionOptions: ParsableArguments {
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option(help: "The approval step's id.") var step: String
    @Option(help: "Why; recorded with the decision.") var comment: String?
    @Option var output: OutputFormat = .text

    func send(_ verb: String) async throws {
        var body: [String: JSONValue] = ["step": .string(step)]
        if let comment { body["comment"] = .string(comment) }
        let view = try await perform { try await api.client().call(.post, "/v1/runs/\(percentEncoded(id))/\(verb)", body: body, as: RunView.self).value }
        print(output == .json ? view.jsonText : RunPrinter.describe(view))
    }
}

/// `gantry approve`.
struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Approve an approval gate of a run (an approver token; not the submitter's when the gate says so).")
    @OptionGroup var decision: DecisionOptions

    func run() async throws { try await decision.send("approve") }
}

/// `gantry reject`.
struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reject an approval gate: the run fails (its on_failure and finally steps run).")
    @OptionGroup var decision: DecisionOptions

    func run() async throws { try await decision.send("reject") }
}

/// `gantry cancel RUN`.
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a run: queued steps are dropped, running ones stopped, finally steps still run.")
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option var output: OutputFormat = .text

    func run() async throws {
        let view = try await perform { try await api.client().call(.post, "/v1/runs/\(percentEncoded(id))/cancel", body: [:], as: RunView.self).value }
        print(output == .json ? view.jsonText : RunPrinter.summary(view))
    }
}

/// `gantry retry RUN [--step ID]`.
struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-run the failed steps of a failed run (or one of them) and what they held up, as new attempts.")
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option(help: "Only this failed step (and its dependents).") var step: String?
    @Option var output: OutputFormat = .text

    func run() async throws {
        let body: [String: JSONValue] = step.map { ["step": .string($0)] } ?? [:]
        let view = try await perform { try await api.client().call(.post, "/v1/runs/\(percentEncoded(id))/retry", body: body, as: RunView.self).value }
        print(output == .json ? view.jsonText : RunPrinter.summary(view))
    }
}

/// Runs an API call; a refusal or outage becomes one `Error:` line and exit status 2 (refused) or 3 (unreachable).
private func perform<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let failure as APIFailure {
        FileHandle.standardError.write(Data("Error: \(failure.message)\n".utf8))
        throw ExitCode(failure.isRefusal ? 2 : 3)
    }
}

func percentEncoded(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+/?#"))) ?? text
}
