/// The input schema of every step kind Gantry runs: what `with:` may hold. Each kind's
/// executor reads the same keys through its `StepInputs` struct (`inputs(for:)`); a key added
/// to a struct is added here, or StepInputSchemaTests fails (docs/step-kinds.md describes each).
public enum StepInputSchemas {
    /// The schema of `kind`, or nil for a kind with its own checks (`approval`) or none known.
    public static func schema(for kind: String) -> InputSchema? {
        switch kind {
        case "noop": noop
        case "build": build
        case "scan": scan
        case "backup": backup
        case "deploy": deploy
        case "smoke-test": smokeTest
        case "metrics-watch": metricsWatch
        case "notify": notify
        default: nil
        }
    }

    /// The struct the executor of `kind` reads its inputs as, or nil for a kind with none
    /// (`approval`, which the dispatcher handles) or none known.
    public static func inputs(for kind: String) -> (any StepInputs.Type)? {
        switch kind {
        case "noop": NoopInputs.self
        case "build": BuildInputs.self
        case "scan": ScanInputs.self
        case "backup": BackupInputs.self
        case "deploy": DeployInputs.self
        case "smoke-test": SmokeTestInputs.self
        case "metrics-watch": MetricsWatchInputs.self
        case "notify": NotifyInputs.self
        default: nil
        }
    }

    /// `noop`: the test kind (NoopExecutor).
    static let noop = InputSchema([
        .optional("sleep_ms", .integer(min: 0)),
        .optional("fail_first", .integer(min: 0)),
        .optional("exit_code", .integer(min: 0, max: 255)),
        .optional("retryable", .boolean),
        .optional("hang", .boolean),
        .optional("output", .map(.any, keys: InputNames.outputName)),
        .optional("log", .text),
        .optional("check_lease", .boolean),
    ])
}

/// Checks of names and words that several kinds share; each returns the problem, or nil.
public enum InputNames {
    /// A step output's name (`${{ steps.ID.outputs.NAME }}`): letters, digits, `_` and `-`, from a letter or `_`.
    public static let outputName: @Sendable (String) -> String? = { name in
        isIdentifier(name, extra: "-") ? nil : "an output name is ASCII letters, digits, '_' and '-', starting with a letter or '_'"
    }

    /// An environment variable's name: `[A-Za-z_][A-Za-z0-9_]*`.
    public static let variableName: @Sendable (String) -> String? = { name in
        isIdentifier(name, extra: "") ? nil : "a variable name is ASCII letters, digits and '_', not starting with a digit"
    }

    /// A plain name (service, namespace, context): `SafeName`.
    public static let safeName: @Sendable (String) -> String? = { name in
        SafeName.isValid(name) ? nil : "use \(SafeName.rule)"
    }

    static func isIdentifier(_ name: String, extra: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCII, first == "_" || first.properties.isAlphabetic else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || extra.unicodeScalars.contains($0) || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }
}
