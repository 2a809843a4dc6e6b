import Foundation

/// The `${{ … }}` expressions of step inputs.
///
/// The dispatcher binds every expression it can answer — `run.*` and
/// `steps.ID.outputs.NAME` — when a step starts, and sends the values beside the
/// inputs (never pasted into them). The worker resolves `secrets.*` itself and
/// substitutes values into plain fields; a shell command gets them as
/// environment variables instead (`ShellExpressions`).
public enum Expressions {
    /// What a run's expressions can read.
    public struct RunContext: Sendable, Equatable {
        public var id: String
        public var pipeline: String
        public var environment: String?
        public var sha: String?
        public var ref: String?
        public var submitter: String
        public var params: [String: String]
        /// How the run is going when the step starts: `success`, `failure` or `canceled`.
        public var outcome: String
        public var startedAtMs: Int64?
        /// Steps that failed for good so far, in pipeline order.
        public var failedSteps: [String]

        public init(
            id: String, pipeline: String, environment: String? = nil, sha: String? = nil, ref: String? = nil,
            submitter: String, params: [String: String] = [:], outcome: String = "success", startedAtMs: Int64? = nil,
            failedSteps: [String] = []
        ) {
            self.id = id
            self.pipeline = pipeline
            self.environment = environment
            self.sha = sha
            self.ref = ref
            self.submitter = submitter
            self.params = params
            self.outcome = outcome
            self.startedAtMs = startedAtMs
            self.failedSteps = failedSteps
        }
    }

    /// What a step of `kind` is given even when its inputs name nothing: `build`
    /// and `scan` export the run's facts to commands (`GANTRY_SHA` …), `notify` reports
    /// on the run. Other kinds get only what their inputs name.
    public static func implicitReferences(kind: String) -> [String] {
        switch kind {
        case "build", "scan", "backup": ["run.sha", "run.ref", "run.environment", "run.pipeline"]
        case "notify":
            ["run.id", "run.pipeline", "run.environment", "run.sha", "run.ref", "run.submitter",
             "run.outcome", "run.started_at", "run.failed_steps"]
        default: []
        }
    }

    /// Every expression in `value`'s strings, trimmed, each once, in the order found.
    public static func references(in value: JSONValue) -> [String] {
        var found: [String] = []
        var seen: Set<String> = []
        func walk(_ value: JSONValue) {
            switch value {
            case .string(let text):
                for expression in expressions(in: text) where seen.insert(expression).inserted { found.append(expression) }
            case .array(let values): values.forEach(walk)
            case .object(let values): values.keys.sorted().forEach { walk(values[$0]!) }
            case .null, .bool, .number: break
            }
        }
        walk(value)
        return found
    }

    /// The step ids whose outputs `expressions` read.
    public static func stepsRead(by expressions: [String]) -> Set<String> {
        Set(expressions.compactMap { expression in
            let parts = expression.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 4 && parts[0] == "steps" && parts[2] == "outputs" ? String(parts[1]) : nil
        })
    }

    /// Binds what the dispatcher knows. Secrets are left out (the worker resolves
    /// them); an output a step did not produce, or a parameter not given, binds to
    /// the empty string, as in GitHub Actions.
    /// - Parameter outputs: the outputs of the steps that succeeded, by step id.
    public static func bind(
        _ expressions: [String], run: RunContext, outputs: [String: [String: JSONValue]]
    ) -> [String: String] {
        var values: [String: String] = [:]
        for expression in expressions {
            let parts = expression.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            switch parts.first {
            case "run":
                guard parts.count >= 2 else { continue }
                switch parts[1] {
                case "id": values[expression] = run.id
                case "pipeline": values[expression] = run.pipeline
                case "environment": values[expression] = run.environment ?? ""
                case "sha": values[expression] = run.sha ?? ""
                case "short_sha": values[expression] = String((run.sha ?? "").prefix(7))
                case "ref": values[expression] = run.ref ?? ""
                case "submitter": values[expression] = run.submitter
                case "params" where parts.count == 3: values[expression] = run.params[parts[2]] ?? ""
                case "outcome": values[expression] = run.outcome
                case "started_at": values[expression] = run.startedAtMs.map(Timestamp.iso8601(ms:)) ?? ""
                case "failed_steps": values[expression] = run.failedSteps.joined(separator: ", ")
                default: continue
                }
            case "steps" where parts.count == 4 && parts[2] == "outputs":
                values[expression] = outputs[parts[1]]?[parts[3]].map(text(of:)) ?? ""
            default:
                continue
            }
        }
        return values
    }

    /// `text` with each expression that has a value replaced by it; the others are left as written.
    public static func substitute(_ text: String, _ values: [String: String]) -> String {
        guard text.contains("${{") else { return text }
        var output = ""
        var rest = Substring(text)
        while let open = rest.range(of: "${{"), let close = rest[open.upperBound...].range(of: "}}") {
            output += rest[..<open.lowerBound]
            let expression = trimmed(rest[open.upperBound..<close.lowerBound])
            if let value = values[expression] {
                output += value
            } else {
                output += rest[open.lowerBound..<close.upperBound]
            }
            rest = rest[close.upperBound...]
        }
        output += rest
        return output
    }

    /// `value` with every string substituted.
    public static func substitute(_ value: JSONValue, _ values: [String: String]) -> JSONValue {
        switch value {
        case .string(let text): .string(substitute(text, values))
        case .array(let items): .array(items.map { substitute($0, values) })
        case .object(let fields): .object(fields.mapValues { substitute($0, values) })
        case .null, .bool, .number: value
        }
    }

    /// The expressions of one string.
    static func expressions(in text: String) -> [String] {
        var found: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "${{"), let close = rest[open.upperBound...].range(of: "}}") {
            found.append(trimmed(rest[open.upperBound..<close.lowerBound]))
            rest = rest[close.upperBound...]
        }
        return found
    }

    private static func trimmed(_ text: Substring) -> String {
        String(text.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }

    private static func text(of value: JSONValue) -> String {
        if case .string(let text) = value { return text }
        return value.jsonText
    }
}
