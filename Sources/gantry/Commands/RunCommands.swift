import ArgumentParser
import Foundation
import GantryAPI
import GantryCore
import GantryRuntime

/// `gantry submit`: the command CI runs, with the exit statuses of `ExitStatus`.
struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a pipeline run to the dispatcher's API; with --wait, follow it to the end.",
        discussion: """
            Exit status: 0 succeeded (or accepted, without --wait), 1 failed, 2 canceled or refused, \
            3 the API could not be reached, 4 succeeded but a finally step failed, 64 a usage or \
            configuration error (a flag, a file, no token). Needs GANTRY_URL and GANTRY_TOKEN (a \
            submitter token for the environment). --output id prints only the run's id; re-attach \
            to a run with gantry wait RUN.
            """
    )

    @OptionGroup var api: APIOptions
    @Option(help: "The pipeline file (YAML).") var pipeline: String
    @Option(help: "The environment; must match the pipeline's when it names one.") var env: String?
    @Option(help: "The commit to deploy (7 to 64 hexadecimal digits).") var sha: String
    @Option(help: "The branch or tag.") var ref: String?
    @Option(help: "The confirmation text the pipeline's gates.confirm asks for.") var confirm: String?
    @Option(name: .customLong("changed-files"), help: "A file listing the changed paths, one per line ('-' for stdin), for when.paths.")
    var changedFiles: String?
    @Option(help: "A run parameter NAME=VALUE; repeat for several.") var param: [String] = []
    @Option(name: .customLong("idempotency-key"), help: "Submitting again with the same key returns the same run.")
    var idempotencyKey: String?
    @Flag(help: "Follow the run, printing step states, and exit with its outcome.") var wait = false
    @Option var output: RunOutputFormat = .text

    func validate() throws {
        guard Identifiers.isCommitSHA(sha) else {
            throw ValidationError("--sha '\(sha.prefix(80))': a commit is \(Identifiers.commitSHARule)")
        }
    }

    func run() async throws {
        let client = try api.client()
        var request = Components.Schemas.SubmitRequest(
            pipeline: try InputFile.read(pipeline, flag: "--pipeline"), pipelineFile: pipeline, environment: env, sha: sha,
            ref: ref, confirm: confirm, idempotencyKey: idempotencyKey
        )
        var params: [String: String] = [:]
        for pair in param {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw UsageError("--param '\(pair)': write NAME=VALUE")
            }
            params[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        if !params.isEmpty { request.params = .init(additionalProperties: params) }
        if let changedFiles {
            let text = try InputFile.read(changedFiles, flag: "--changed-files", limit: 8 << 20)
            request.changedFiles = text.split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        let created: RunView
        do {
            created = try await client.submit(request)
        } catch let failure as APIFailure {
            FileHandle.standardError.write(Data("Error: \(failure.message)\n".utf8))
            throw ExitCode(failure.isRefusal ? ExitStatus.refused : ExitStatus.unreachable)
        }
        guard wait else {
            StandardOutput.write(RunOutput.final(created, output, summary: true) + "\n")
            return
        }
        if output == .text { StandardOutput.write("run \(created.id) submitted: \(created.pipeline)\(created.environment.map { " → \($0)" } ?? "")\n") }
        if output == .id { StandardOutput.write(created.id + "\n") }
        let final = try await RunOutput.follow(created.id, client: client, output: output)
        try RunOutput.finish(final, output)
    }
}

/// `gantry wait RUN`: re-attach to a run (CI that lost its `submit --wait`, or a second job
/// that waits on the first), printing step changes as `submit --wait` does, and exit with its outcome.
struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow a run to its end, printing each step change, and exit with its outcome (as submit --wait).",
        discussion: "Exit status: 0 succeeded, 1 failed, 2 canceled or refused, 3 the API could not be reached, 4 succeeded but a finally step failed, 64 a usage error."
    )
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option var output: RunOutputFormat = .text

    func run() async throws {
        let client = try api.client()
        if output == .id { StandardOutput.write(id + "\n") }
        let final: RunView
        do {
            final = try await RunOutput.follow(id, client: client, output: output)
        } catch let failure as APIFailure {
            FileHandle.standardError.write(Data("Error: \(failure.message)\n".utf8))
            throw ExitCode(failure.isRefusal ? ExitStatus.refused : ExitStatus.unreachable)
        }
        try RunOutput.finish(final, output)
    }
}

/// How the run commands print a run they follow, and how they end.
enum RunOutput {
    /// Prints each step's state as it changes: plain time-stamped lines in CI logs (written
    /// line by line whatever stdout is), plus a progress line rewritten in place on a
    /// terminal. With --output json or id, progress goes to stderr.
    static func follow(_ id: String, client: APIClient, output: RunOutputFormat) async throws -> RunView {
        let terminal = isatty(STDOUT_FILENO) == 1 && output == .text
        let sink: (String) -> Void = output == .text
            ? { StandardOutput.write($0 + "\n") }
            : { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        var last: RunView?
        let final = try await client.follow(id) { view in
            let time = String(Timestamp.iso8601(ms: WallClock.nowMs()).dropFirst(11).prefix(8))
            if terminal { StandardOutput.write("\r\u{1B}[K") }
            for line in RunPrinter.changes(from: last, to: view) {
                sink("\(time) \(line)")
            }
            if terminal { StandardOutput.write(RunPrinter.progress(view)) }
            last = view
        }
        if terminal { StandardOutput.write("\r\u{1B}[K") }
        return final
    }

    /// A run as the output format asks: the whole view (text or JSON), or its id.
    static func final(_ run: RunView, _ output: RunOutputFormat, summary: Bool = false, all: Bool = false) -> String {
        switch output {
        case .json: run.jsonText
        case .id: run.id
        case .text: summary ? RunPrinter.summary(run) : RunPrinter.describe(run, all: all)
        }
    }

    /// Prints the finished run (text or JSON; the id was printed when following began) and
    /// ends with its exit status.
    static func finish(_ run: RunView, _ output: RunOutputFormat) throws {
        if output != .id { StandardOutput.write(final(run, output) + "\n") }
        let status = ExitStatus.of(run)
        if status != ExitStatus.succeeded { throw ExitCode(status) }
    }
}

/// `gantry runs`: the latest runs the token may read.
struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List runs, newest first, with what waiting runs wait for.")
    @OptionGroup var api: APIOptions
    @Option(help: "Only this environment.") var env: String?
    @Option(help: "Only this status: waiting, running, succeeded, failed, canceled.") var status: String?
    @Flag(name: .customLong("awaiting-approval"), help: "Only runs with a gate this token may approve now (each says which gate).")
    var awaitingApproval = false
    @Option var limit: Int = 20
    @Option var output: RunOutputFormat = .text

    func validate() throws {
        if let status, APIClient.RunStatus(rawValue: status) == nil {
            let statuses = APIClient.RunStatus.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError("--status '\(status.prefix(40))': give one of \(statuses)")
        }
        guard (1...1_000).contains(limit) else { throw ValidationError("--limit \(limit): give 1 to 1000") }
    }

    func run() async throws {
        let runs = try await perform {
            try await api.client().runs(
                environment: env, status: status.flatMap(APIClient.RunStatus.init(rawValue:)), awaitingApproval: awaitingApproval, limit: limit
            )
        }
        for run in runs {
            StandardOutput.write(RunOutput.final(run, output, summary: true) + "\n")
        }
    }
}

/// `gantry run RUN`: one run with its DAG, attempts and approvals.
struct ShowRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Show a run: each step's state, attempts, durations and why it waits.")
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Flag(help: "Every step, even of a large run (by default, a run of more than 40 steps is summarized: counts by state, failed steps first).")
    var all = false
    @Option var output: RunOutputFormat = .text

    func run() async throws {
        let view = try await perform { try await api.client().run(id) }
        StandardOutput.write(RunOutput.final(view, output, all: all) + "\n")
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
        try await perform { try await api.client().log(id, step: step, attempt: attempt, follow: follow) }
    }
}

/// What `gantry approve` and `gantry reject` take, and the request both send.
struct DecisionOptions: ParsableArguments {
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option(help: "The approval step's id.") var step: String
    @Option(help: "Why; recorded with the decision.") var comment: String?
    @Option var output: RunOutputFormat = .text

    func send(approve: Bool) async throws {
        let view = try await perform {
            let client = try api.client()
            return approve
                ? try await client.approve(id, step: step, comment: comment)
                : try await client.reject(id, step: step, comment: comment)
        }
        StandardOutput.write(RunOutput.final(view, output) + "\n")
    }
}

/// `gantry approve`.
struct Approve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Approve an approval gate of a run (an approver token; not the submitter's when the gate says so).")
    @OptionGroup var decision: DecisionOptions

    func run() async throws { try await decision.send(approve: true) }
}

/// `gantry reject`.
struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reject an approval gate: the run fails (its on_failure and finally steps run).")
    @OptionGroup var decision: DecisionOptions

    func run() async throws { try await decision.send(approve: false) }
}

/// `gantry cancel RUN`.
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a run: queued steps are dropped, running ones stopped, finally steps still run.")
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option var output: RunOutputFormat = .text

    func run() async throws {
        let view = try await perform { try await api.client().cancel(id) }
        StandardOutput.write(RunOutput.final(view, output, summary: true) + "\n")
    }
}

/// `gantry retry RUN [--step ID]`.
struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-run the failed steps of a failed run (or one of them) and what they held up, as new attempts.")
    @OptionGroup var api: APIOptions
    @Argument(help: "The run id.") var id: String
    @Option(help: "Only this failed step (and its dependents).") var step: String?
    @Option var output: RunOutputFormat = .text

    func run() async throws {
        let view = try await perform { try await api.client().retry(id, step: step) }
        StandardOutput.write(RunOutput.final(view, output, summary: true) + "\n")
    }
}

/// Runs an API call; a refusal or outage becomes one `Error:` line and exit status 2 (refused) or 3 (unreachable).
func perform<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let failure as APIFailure {
        FileHandle.standardError.write(Data("Error: \(failure.message)\n".utf8))
        throw ExitCode(failure.isRefusal ? ExitStatus.refused : ExitStatus.unreachable)
    }
}
