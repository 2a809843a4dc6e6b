import Foundation
import GantryCore
import GantryProcess

/// The `build` kind: runs a shell command (or a list of them) in its own process group.
///
/// ```yaml
/// with:
///   run: |
///     docker build -t registry.local/api:${{ run.short_sha }} .
///     echo "image=registry.local/api:${{ run.short_sha }}" >> "$GANTRY_OUTPUT"
///   # or commands: ["make deps", "make test"]   (run in order; the first failure ends the step)
///   workdir: services/api      # default: the worker's working directory
///   shell: bash                # bash (default when installed: -e -o pipefail) or sh (-e), or a path
///   env: { GOFLAGS: "-mod=vendor", NPM_TOKEN: "${{ secrets.NPM_TOKEN }}" }
///   inherit_env: [DOCKER_HOST] # worker variables the command may see; nothing else is inherited
///   kill_grace: 10s            # on timeout or cancel: SIGTERM to the group, SIGKILL after this
/// ```
///
/// Expressions in the command text become environment variables (`"${GANTRY_EXPR_1}"`),
/// never pasted into it; `env` values are plain data and get the values themselves.
/// The command sees `PATH`, `HOME`, `USER`, `LANG`, `TZ`, `TMPDIR`, what `env` and
/// `inherit_env` name, `CI=true`, `GANTRY_RUN_ID`, `GANTRY_STEP_ID`, `GANTRY_ATTEMPT`,
/// `GANTRY_SHA`, `GANTRY_REF`, `GANTRY_ENVIRONMENT`, `GANTRY_PIPELINE` and `GANTRY_OUTPUT`:
/// the worker's own credentials (`GANTRY_DATABASE_URL`, `GANTRY_SECRET_*`, cloud keys)
/// never reach it. Its outputs are the `name=value` lines it writes to `$GANTRY_OUTPUT`.
///
/// A non-zero exit fails the attempt with that exit code (the step's
/// `retry.on_exit_codes` decides whether to retry); death by a signal is recorded
/// as 128 + the signal number, as a shell reports it.
public struct BuildExecutor: StepExecutor {
    public let kind = "build"

    private let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public func execute(_ context: StepContext) async throws -> StepOutputs {
        let spec = try BuildSpec(context, workerEnvironment: environment)
        let scratch = try Scratch(for: context.job)
        defer { scratch.remove() }
        guard FileManager.default.createFile(atPath: scratch.outputPath, contents: nil) else {
            throw StepFailure("build: cannot create \(scratch.outputPath)")
        }
        var variables = spec.environment
        variables["GANTRY_OUTPUT"] = scratch.outputPath

        let process = ChildProcess(
            executable: spec.command.executable, arguments: spec.command.arguments,
            environment: variables, workdir: spec.workdir, killGrace: spec.killGrace
        )
        let log = context.log
        let termination: ChildProcess.Termination
        do {
            let output = log.processOutput()
            termination = try await process.run { output.write($0) }
        } catch {
            throw StepFailure("build: \(error)", retryable: false)
        }
        if termination.orphansKilled {
            log.write("[gantry] the command left processes running in its group; they were killed")
        }
        if termination.stopped {
            log.write(termination.killedAfterGrace
                ? "[gantry] the command was stopped: it ignored SIGTERM and was killed after \(DurationParser.format(spec.killGrace))"
                : "[gantry] the command was stopped with SIGTERM to its process group")
            throw CancellationError()
        }
        guard termination.ending == .exited(0) else {
            throw StepFailure("command \(termination.ending)", exitCode: termination.ending.code)
        }
        return try scratch.outputs().mapValues(JSONValue.string)
    }
}

/// A build step's inputs (`BuildInputs`), checked; every problem names the field.
struct BuildSpec {
    var command: ShellCommand
    var workdir: String?
    var environment: [String: String]
    var killGrace: Duration

    init(_ context: StepContext, workerEnvironment: [String: String]) throws {
        let inputs = try context.decodeInputs(BuildInputs.self)
        let script: String
        switch (inputs.run, inputs.commands) {
        case (let text?, nil):
            script = text
        case (nil, let list?) where !list.isEmpty:
            script = list.joined(separator: "\n")
        case (.some, .some):
            throw StepFailure("with: give either run or commands, not both", retryable: false)
        default:
            throw StepFailure("with.run: give the command to run (or with.commands: a list of them)", retryable: false)
        }
        guard !script.allSatisfy(\.isWhitespace) else {
            throw StepFailure("with.run is empty", retryable: false)
        }

        let path = workerEnvironment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        command = try ShellCommand(script, field: "with.run", shellName: inputs.shell, context: context, path: path)

        if let text = inputs.workdir {
            guard !text.isEmpty else {
                throw StepFailure("with.workdir is not a path", retryable: false)
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: text, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw StepFailure("with.workdir '\(text)': no such directory on worker", retryable: false)
            }
            workdir = text
        }

        killGrace = inputs.killGrace ?? .seconds(10)

        var environment = ShellCommand.baseEnvironment(context, workerEnvironment: workerEnvironment)
        for (index, name) in (inputs.inheritEnv ?? []).enumerated() {
            guard BuildSpec.isVariableName(name) else {
                throw StepFailure("with.inherit_env[\(index)] is not a variable name", retryable: false)
            }
            guard !name.hasPrefix("GANTRY_SECRET_") else {
                throw StepFailure("with.inherit_env[\(index)] \(name): name the secret as ${{ secrets.\(name.dropFirst("GANTRY_SECRET_".count)) }} in with.env, so that it is redacted", retryable: false)
            }
            // The worker's own connections and credentials (database, Redis, its tokens) never
            // reach a step. AWS_* passes only when a policy of this worker's pool lists it: checked
            // at submit, and again here for a job that did not come through a submit.
            guard !name.hasPrefix("GANTRY_") else {
                throw StepFailure("with.inherit_env[\(index)] \(name): the worker's GANTRY_* variables never reach a step", retryable: false)
            }
            guard context.scope.mayInherit(name) else {
                throw StepFailure("with.inherit_env[\(index)] \(name): no environment policy of this worker's pool lists it in inherit_env", retryable: false)
            }
            if let value = workerEnvironment[name] { environment[name] = value }
        }
        for (name, value) in (inputs.env ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard BuildSpec.isVariableName(name) else {
                throw StepFailure("with.env.\(name) is not a variable name (letters, digits and '_', not starting with a digit)", retryable: false)
            }
            if let expression = Expressions.references(in: .string(value)).first {
                throw StepFailure("with.env.\(name): '${{ \(expression) }}' has no value here", retryable: false)
            }
            environment[name] = value
        }
        self.environment = environment.merging(command.variables) { _, expression in expression }
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first == "_" else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }
}

extension Scratch {
    /// The `$GANTRY_OUTPUT` file a build command writes.
    var outputPath: String { path("output") }

    /// The outputs the command wrote to `$GANTRY_OUTPUT`.
    func outputs() throws -> [String: String] {
        guard let handle = FileHandle(forReadingAtPath: outputPath) else { return [:] }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: OutputFile.maxBytes + 1)) ?? Data()
        guard data.count <= OutputFile.maxBytes else {
            throw StepFailure("$GANTRY_OUTPUT holds more than \(OutputFile.maxBytes / 1024) KiB; keep large results in files or artifacts", retryable: false)
        }
        do {
            return try OutputFile.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw StepFailure("\(error)", retryable: false)
        }
    }
}
