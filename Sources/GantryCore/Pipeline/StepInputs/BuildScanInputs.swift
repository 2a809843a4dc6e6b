extension StepInputSchemas {
    /// `build`: a shell script (`run`) or a list of commands run in order as one script
    /// (`commands`), in a process group of its own (BuildExecutor and its BuildSpec).
    ///
    /// Every path, name and script here is text on the worker (a number or `true` written
    /// unquoted is YAML's number or boolean there, read back as its text, not as written),
    /// and `shell`, `kill_grace` and the `inherit_env` names are read as written, never
    /// resolved (`BuildInputs`' readings): the rule below says so at validate rather than
    /// leaving it to a worker that would refuse them or read them otherwise.
    /// Whether an `AWS_*` or other `GANTRY_*` name may be inherited is the environment
    /// policy's to say (EnvironmentRules at submit, the pool's SecretScope on the worker).
    static let build = InputSchema(
        [
            .optional("run", .checkedText("a shell script", BuildScanInputs.nonBlank)),
            // Joined into one script, so one failing command ends the step.
            .optional("commands", .list(.text, minCount: 1)),
            // Resolved on the worker, which alone knows whether the directory exists.
            .optional("workdir", .checkedText("a directory path", BuildScanInputs.nonEmpty)),
            // `bash`, `sh` or a path, looked up on the worker's PATH.
            .optional("shell", .checkedText("a shell name or path", BuildScanInputs.nonEmpty)),
            // Values are data (a number or true is passed as its text).
            .optional("env", .map(.text, keys: InputNames.variableName)),
            .optional("inherit_env", .list(.checkedText("a variable name", BuildScanInputs.inheritedName))),
            // 0s is a choice the executor takes: SIGKILL right after SIGTERM.
            .optional("kill_grace", .duration(min: Duration.zero)),
        ],
        exclusive: [["run", "commands"]],
        oneRequired: [["run", "commands"]],
        rules: [
            BuildScanInputs.writtenAs(
                text: ["run", "workdir", "shell"], textItems: ["commands", "inherit_env"],
                literal: ["shell", "kill_grace"], literalItems: ["inherit_env"]
            ),
            BuildScanInputs.commandsHoldACommand,
        ]
    )

    /// `scan`: the secrets gate, the vulnerabilities gate or both, with an allow-list of
    /// accepted findings (ScanExecutor, its SecretScan and VulnerabilityGate).
    ///
    /// A path written as an unquoted number or boolean would reach the worker as YAML reads it
    /// (`1.10` as 1.1), not as written, and a lone `exclude` glob that is not in a list would
    /// fail the step there, after the steps before it ran: each is refused here.
    static let scan = InputSchema(
        [
            .optional("allowlist", .checkedText("a file path", BuildScanInputs.nonEmpty)),
            .optional("secrets", .object(BuildScanInputs.secretsGate)),
            .optional("vulnerabilities", .object(BuildScanInputs.vulnerabilitiesGate)),
        ],
        oneRequired: [["secrets", "vulnerabilities"]],
        rules: [BuildScanInputs.writtenAs(text: ["allowlist"])]
    )
}

/// The parts of the `build` and `scan` schemas: the nested gates and the checks of
/// written values that the field types cannot make.
private enum BuildScanInputs {
    /// `scan`'s `secrets:`: the workspace, or with `diff` only the lines a commit adds.
    static let secretsGate = InputSchema(
        [
            // Resolved on the worker; default the worker's directory.
            .optional("path", .checkedText("a directory path", nonEmpty)),
            // true: what the run's commit adds (SHA^ SHA); { base: REF }: base...SHA.
            .optional("diff", .either([.boolean, .object(diffBase)])),
            // Globs relative to path (PathGlob).
            .optional("exclude", .list(.text)),
        ],
        rules: [writtenAs(text: ["path"], textItems: ["exclude"], literal: ["diff"], literalItems: ["exclude"])]
    )

    /// `secrets.diff: { base: REF }`.
    static let diffBase = InputSchema(
        [.required("base", .checkedText("a git ref such as origin/main", nonEmpty))],
        rules: [writtenAs(text: ["base"])]
    )

    /// `scan`'s `vulnerabilities:`: a scanner's report, from a file or a command's stdout.
    static let vulnerabilitiesGate = InputSchema(
        [
            // Resolved on the worker.
            .optional("report", .checkedText("a file path", nonEmpty)),
            // Its expressions become variables, as in a build's run.
            .optional("command", .checkedText("a shell command", nonBlank)),
            // Default: told from the report.
            .optional("format", .oneOf(VulnerabilityReport.Format.allCases.map(\.rawValue))),
            // Default high.
            .optional("fail_on", .oneOf(thresholds)),
        ],
        exclusive: [["report", "command"]],
        oneRequired: [["report", "command"]],
        rules: [writtenAs(text: ["report", "command"], literal: ["format", "fail_on"])]
    )

    /// The severities `fail_on` takes, highest first: `unknown` is counted but is no threshold.
    static let thresholds = ScanInputs.Threshold.words

    /// A path or name: the worker finds nothing at an empty one.
    static let nonEmpty: @Sendable (String) -> String? = { text in
        text.isEmpty ? "must not be empty" : nil
    }

    /// A script: the executor refuses one with nothing but whitespace.
    static let nonBlank: @Sendable (String) -> String? = { text in
        text.allSatisfy(\.isWhitespace) ? "has no command" : nil
    }

    /// A worker variable a build may see. Secrets are refused by name on the worker too,
    /// where the message says what to write instead; here it is said before the run.
    static let inheritedName: @Sendable (String) -> String? = { name in
        if let problem = InputNames.variableName(name) { return problem }
        guard name.hasPrefix("GANTRY_SECRET_") else { return nil }
        return "name the secret as ${{ secrets.\(name.dropFirst("GANTRY_SECRET_".count)) }} in env, so that it is redacted"
    }

    /// `commands` whose items are all blank make an empty script, which the executor refuses.
    static let commandsHoldACommand = InputRule { values in
        guard case .array(let items)? = values["commands"], !items.isEmpty, items.allSatisfy(BuildScanInputs.isBlankText) else { return nil }
        return "commands has no command, only empty items"
    }

    /// Checks of how values are written, over the mapping as the parser types it:
    /// - `text`, and each item of the lists at `textItems`, is text on the worker, so a number,
    ///   true/false (also yes/no/on/off) or null written unquoted would reach it as YAML reads
    ///   it (`1.10` as 1.1, null as no value), not as written;
    /// - `literal`, and each item of the lists at `literalItems`, is read as written
    ///   (`InputReading.asWritten`), so an expression there is never resolved.
    static func writtenAs(text: [String] = [], textItems: [String] = [], literal: [String] = [], literalItems: [String] = []) -> InputRule {
        InputRule { values in
            var problems: [String] = []
            for key in text {
                if let problem = Self.notText(values[key], at: key) { problems.append(problem) }
            }
            for key in literal {
                if let problem = Self.unresolved(values[key], at: key) { problems.append(problem) }
            }
            for key in textItems {
                guard case .array(let items)? = values[key] else { continue }
                for (index, item) in items.enumerated() {
                    if let problem = Self.notText(item, at: "\(key)[\(index)]") { problems.append(problem) }
                }
            }
            for key in literalItems {
                guard case .array(let items)? = values[key] else { continue }
                for (index, item) in items.enumerated() {
                    if let problem = Self.unresolved(item, at: "\(key)[\(index)]") { problems.append(problem) }
                }
            }
            return problems.isEmpty ? nil : problems.joined(separator: "; ")
        }
    }

    private static func notText(_ value: JSONValue?, at place: String) -> String? {
        switch value {
        // Unquoted, YAML reads `8080`, and also any value with a ':' such as `api:latest`, as a number.
        case .number?: "\(place) is read as text, but unquoted YAML reads it as a number (as it does any value with a ':'); quote it"
        case .bool?: "\(place) is read as text but is written as true or false (so are yes, no, on and off); quote it"
        case .null?: "\(place) is read as text but is written as null; give a value"
        default: nil
        }
    }

    private static func unresolved(_ value: JSONValue?, at place: String) -> String? {
        guard case .string(let text)? = value, text.contains("${{") else { return nil }
        return "\(place) is read as written: the worker does not resolve an expression there"
    }

    private static func isBlankText(_ value: JSONValue) -> Bool {
        guard case .string(let text) = value else { return false }
        return text.allSatisfy(\.isWhitespace)
    }
}
