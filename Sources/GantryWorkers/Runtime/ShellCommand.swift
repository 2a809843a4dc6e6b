import Foundation
import GantryCore
import GantryProcess

/// A shell command written in a step's inputs, ready to run: its expressions
/// turned into environment variables (`ShellExpressions`), its shell found, and
/// the environment every command a worker runs starts from.
struct ShellCommand {
    var executable: String
    var arguments: [String]
    /// The `GANTRY_EXPR_n` variables carrying the expressions' values.
    var variables: [String: String]

    /// Variables of the worker's environment a command always sees; nothing else is inherited.
    static let passedThrough = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"]

    /// - Parameters:
    ///   - field: where the script was written, for messages (`with.run`).
    ///   - shellName: `bash` (default when installed: `-e -o pipefail`), `sh` (`-e`), or a path.
    init(_ script: String, field: String, shellName: String?, context: StepContext, path: String) throws {
        var script = script
        variables = [:]
        if script.contains("${{") {
            let rewritten = ShellExpressions.rewrite(script)
            if let (line, expression) = rewritten.unexpandable.first {
                throw StepFailure("\(field) line \(line): '${{ \(expression) }}' is in a heredoc with a quoted delimiter, where the shell expands nothing; write the delimiter unquoted (<<EOF)", retryable: false)
            }
            for (name, expression) in rewritten.variables {
                guard let value = context.bindings[expression] else {
                    throw StepFailure("\(field): '${{ \(expression) }}' has no value here", retryable: false)
                }
                variables[name] = value
            }
            script = rewritten.command
        }
        let name = shellName ?? (ChildProcess.locate("bash", path: path) != nil ? "bash" : "sh")
        guard let shellPath = ChildProcess.locate(name, path: path) else {
            throw StepFailure("with.shell '\(name)': no such executable on this worker's PATH", retryable: false)
        }
        executable = shellPath
        switch (shellPath as NSString).lastPathComponent {
        case "bash": arguments = ["--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script]
        case "sh", "dash", "zsh", "ksh": arguments = ["-e", "-c", script]
        default: arguments = ["-c", script]
        }
    }

    /// What every command starts from: the harmless variables of the worker, `CI=true`,
    /// the attempt's identity and the run's facts the dispatcher bound.
    static func baseEnvironment(_ context: StepContext, workerEnvironment: [String: String]) -> [String: String] {
        var environment: [String: String] = [:]
        for name in passedThrough {
            if let value = workerEnvironment[name] { environment[name] = value }
        }
        environment["PATH"] = workerEnvironment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        environment["CI"] = "true"
        environment["GANTRY_RUN_ID"] = context.job.runID
        environment["GANTRY_STEP_ID"] = context.job.stepID
        environment["GANTRY_ATTEMPT"] = String(context.job.attempt)
        for (variable, expression) in [("GANTRY_SHA", "run.sha"), ("GANTRY_REF", "run.ref"),
                                       ("GANTRY_ENVIRONMENT", "run.environment"), ("GANTRY_PIPELINE", "run.pipeline")] {
            if let value = context.bindings[expression] { environment[variable] = value }
        }
        return environment
    }
}
