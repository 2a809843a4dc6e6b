import ArgumentParser
import Foundation
import GantryAPI
import GantryCore

/// How the fleet commands print and refresh.
struct WatchOptions: ParsableArguments {
    @Flag(help: "Print again every --interval until interrupted (a terminal is redrawn; a pipe gets one block, or one JSON line, each time).")
    var watch = false

    @Option(help: "How often --watch refreshes (e.g. 2s).")
    var interval: String = "2s"

    @Option var output: OutputFormat = .text

    func validate() throws {
        let every = try parseDuration(interval, flag: "--interval")
        guard every >= .milliseconds(200) else { throw ValidationError("--interval \(interval): at least 200ms") }
    }

    /// Prints what `read` returns once, or every interval with --watch.
    func show<T: Encodable>(_ read: () async throws -> T, text: (T) -> String) async throws {
        let every = try parseDuration(interval, flag: "--interval")
        let terminal = isatty(STDOUT_FILENO) == 1 && output == .text
        repeat {
            let value = try await perform(read)
            switch output {
            case .json:
                StandardOutput.write(String(decoding: try Self.encoder.encode(value), as: UTF8.self) + "\n")
            case .text:
                // On a terminal the screen is redrawn; in a log, each refresh is a block after a blank line.
                if watch { StandardOutput.write(terminal ? "\u{1B}[H\u{1B}[2J" : "\n") }
                StandardOutput.write(text(value) + "\n")
            }
            if watch { try await Task.sleep(for: every) }
        } while watch
    }

    /// One answer of a command that changes something: its JSON, or a line for people.
    static func write<T: Encodable>(_ value: T, _ output: OutputFormat, text: String) throws {
        StandardOutput.write(output == .json ? String(decoding: try encoder.encode(value), as: UTF8.self) + "\n" : text + "\n")
    }

    /// The API's form: times as `2026-12-05T12:00:00.123Z`, keys in order, one line.
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(MillisecondDates.text(date))
        }
        return encoder
    }()
}

/// `gantry fleet`: every worker, live, draining or gone quiet.
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "List the workers: state, queues, steps in flight, heartbeat, release, host, and what each runs.",
        discussion: "Needs an operator, auditor or admin token (GANTRY_URL, GANTRY_TOKEN). A worker whose heartbeat is older than its lease is shown as stopped, with what that means."
    )
    @OptionGroup var api: APIOptions
    @OptionGroup var display: WatchOptions

    func run() async throws {
        let client = try api.client()
        try await display.show({ try await client.fleet() }, text: FleetPrinter.fleet)
    }
}

/// `gantry queues`: every queue's figures and what is wrong with it.
struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues",
        abstract: "List the queues: waiting, leased, delayed and dead steps, the oldest waiting one's age, steps taken per minute, workers, and problems.",
        discussion: "Needs an operator, auditor or admin token. A queue nobody takes, one whose oldest step has waited over a minute, leases nobody renews and dead letters are each named with what to do."
    )
    @OptionGroup var api: APIOptions
    @OptionGroup var display: WatchOptions

    func run() async throws {
        let client = try api.client()
        try await display.show({ try await client.queues() }, text: FleetPrinter.queues)
    }
}

/// What `pause` and `resume` take: a kind and its pool.
struct QueueArguments: ParsableArguments {
    @OptionGroup var api: APIOptions
    @Argument(help: "The step kind (build, deploy, …).") var kind: String
    @Option(help: "The pool whose queue it is (default: the default pool).") var pool: String?

    var queue: String { kind + (pool.map { "@\($0)" } ?? "") }

    func validate() throws {
        guard Identifiers.isValidQueueKind(queue) else {
            throw ValidationError("\(pool == nil ? "KIND" : "KIND/--pool") '\(queue.prefix(80))': give a kind like build, and a pool like production")
        }
    }
}

/// `gantry pause KIND [--pool P]`.
struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Pause a queue: its workers finish what they hold and take no new steps of it (within a few seconds) until resumed.",
        discussion: "Needs an operator or admin token; recorded in the actions log with the token's name and --reason. Steps keep queueing while it is paused."
    )
    @OptionGroup var queue: QueueArguments
    @Option(help: "Why; recorded with the action.") var reason: String?
    @Option var output: OutputFormat = .text

    func run() async throws {
        let paused = try await perform { try await queue.api.client().pause(queue.queue, reason: reason) }
        try WatchOptions.write(paused, output, text: "queue \(paused.queue) paused: \(paused.waiting) waiting steps stay queued; the \(paused.leased) workers hold now finish")
    }
}

/// `gantry resume KIND [--pool P]`.
struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Resume a paused queue.",
        discussion: "Needs an operator or admin token; recorded in the actions log."
    )
    @OptionGroup var queue: QueueArguments
    @Option var output: OutputFormat = .text

    func run() async throws {
        let resumed = try await perform { try await queue.api.client().resume(queue.queue) }
        try WatchOptions.write(resumed, output, text: "queue \(resumed.queue) resumed: \(resumed.waiting) waiting, \(resumed.liveWorkers) live workers")
    }
}

/// `gantry drain WORKER`.
struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Drain a worker from afar, as SIGTERM would: it takes no new steps, finishes or hands back what it holds within its drain grace, and stops.",
        discussion: "Needs an operator or admin token; recorded in the actions log. gantry fleet shows it draining, then gone."
    )
    @OptionGroup var api: APIOptions
    @Argument(help: "The worker's name (gantry fleet lists them).") var worker: String
    @Option(help: "Why; recorded with the action.") var reason: String?
    @Option var output: OutputFormat = .text

    func run() async throws {
        let drained = try await perform { try await api.client().drain(worker, reason: reason) }
        try WatchOptions.write(drained, output, text: "worker \(drained.name) asked to drain: \(drained.inFlight) steps in flight finish or are handed back within its drain grace")
    }
}
