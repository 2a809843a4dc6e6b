import Foundation
import Yams

/// Reads a pipeline file and checks it, reporting every problem with its
/// place (`file:line:column: message`), not only the first.
///
/// Pure: it reads the text it is given and nothing else.
public struct PipelineParser: Sendable {
    /// Step kinds the pipeline may use (`approval` is always known: the dispatcher handles it).
    public var knownKinds: Set<String>

    /// The kinds of DESIGN.md, including those whose workers come later.
    public static let standardKinds: Set<String> = [
        "approval", "build", "scan", "backup", "deploy", "smoke-test", "metrics-watch", "notify", "noop",
    ]

    /// How large and deep a file may be (it comes from a submitter).
    public var limits: YAMLLimits

    public init(knownKinds: Set<String> = PipelineParser.standardKinds, limits: YAMLLimits = YAMLLimits()) {
        self.knownKinds = knownKinds.union(["approval"])
        self.limits = limits
    }

    /// The definition when there is no problem, and every problem found.
    public func parse(_ text: String, file: String) -> (definition: PipelineDefinition?, diagnostics: [PipelineDiagnostic]) {
        var reader = Reader(file: file, knownKinds: knownKinds)
        let root: Node?
        switch BoundedYAML.compose(text, file: file, limits: limits) {
        case .success(let node): root = node
        case .failure(let problem): return (nil, [problem])
        }
        guard let root else {
            return (nil, [PipelineDiagnostic(file: file, line: 1, column: 1, message: "the file is empty; a pipeline needs at least 'pipeline' and 'steps'")])
        }
        let definition = reader.pipeline(root)
        if reader.diagnostics.isEmpty, let definition {
            return (definition, [])
        }
        return (nil, reader.diagnostics.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
    }
}

// MARK: - Reading nodes

private struct Reader: NodeReading {
    let file: String
    let knownKinds: Set<String>
    var diagnostics: [PipelineDiagnostic] = []

    init(file: String, knownKinds: Set<String>) {
        self.file = file
        self.knownKinds = knownKinds
    }

    /// A timeout: a duration of at least 1ms (a zero timeout would end the wait before it starts).
    mutating func timeout(_ entry: (key: Node, value: Node)?, _ what: String) -> Duration? {
        guard let value = duration(entry, what) else { return nil }
        guard value > .zero else {
            report(entry?.value, "\(what) must be more than 0, e.g. 10m")
            return nil
        }
        return value
    }

    // MARK: The pipeline

    mutating func pipeline(_ root: Node) -> PipelineDefinition? {
        let topKeys = ["pipeline", "description", "environment", "timeout", "gates", "concurrency", "defaults", "params", "steps", "on_failure", "finally"]
        guard let top = mapping(root, "the pipeline", keys: topKeys) else { return nil }
        let name = string(top["pipeline"], "pipeline")
        if top["pipeline"] == nil { report(root, "missing key 'pipeline': name the pipeline, e.g. pipeline: staging") }
        var definition = PipelineDefinition(name: name ?? "", steps: [])
        definition.environment = string(top["environment"], "environment")
        if let timeout = timeout(top["timeout"], "timeout") { definition.timeout = timeout }
        if let gates = top["gates"], let entries = mapping(gates.value, "gates", keys: ["confirm", "promote_from"]) {
            definition.confirm = string(entries["confirm"], "gates.confirm")
            definition.promoteFrom = string(entries["promote_from"], "gates.promote_from")
        }
        if let concurrency = top["concurrency"], let entries = mapping(concurrency.value, "concurrency", keys: ["group", "on_busy"]) {
            definition.concurrencyGroup = string(entries["group"], "concurrency.group")
            if let text = string(entries["on_busy"], "concurrency.on_busy") {
                if let value = PipelineDefinition.OnBusy(rawValue: text) {
                    definition.onBusy = value
                } else {
                    let options = PipelineDefinition.OnBusy.allCases.map(\.rawValue)
                    report(entries["on_busy"]?.value, "concurrency.on_busy '\(text)' is not one of \(options.joined(separator: ", "))\(Suggestion.hint(for: text, in: options))")
                }
            }
        }
        if let params = top["params"] { definition.params = self.params(params.value) }
        declaredParams = Set(definition.params.map(\.name))
        var defaultTimeout = Duration.seconds(600)
        var defaultRetry = RetryPolicy()
        if let defaults = top["defaults"], let entries = mapping(defaults.value, "defaults", keys: ["timeout", "retry"]) {
            if let timeout = timeout(entries["timeout"], "defaults.timeout") { defaultTimeout = timeout }
            if let retry = entries["retry"] { defaultRetry = self.retry(retry.value, "defaults.retry", base: defaultRetry) }
        }
        guard let stepsEntry = top["steps"] else {
            report(root, "missing key 'steps': a pipeline needs at least one step")
            return nil
        }
        definition.steps = steps(stepsEntry.value, "steps", timeout: defaultTimeout, retry: defaultRetry)
        if stepsEntry.value.sequence?.isEmpty == true { report(stepsEntry.value, "steps is empty; a pipeline needs at least one step") }
        if let entry = top["on_failure"] { definition.onFailure = steps(entry.value, "on_failure", timeout: defaultTimeout, retry: defaultRetry) }
        if let entry = top["finally"] { definition.finally = steps(entry.value, "finally", timeout: defaultTimeout, retry: defaultRetry) }
        checkGraph(definition, stepNodes: stepNodes)
        return definition
    }

    /// The parameters the file declares, which its expressions may read.
    var declaredParams: Set<String> = []

    /// `params:`: each parameter's type, whether it is required, its default and its checks.
    mutating func params(_ node: Node) -> [PipelineParam] {
        guard let declared = node.mapping else {
            report(node, "params must be a mapping of parameter names to their settings, e.g. params: { region: { required: true } }")
            return []
        }
        let keys = ["type", "required", "default", "values", "pattern", "multiline", "description"]
        var out: [PipelineParam] = []
        for (key, value) in declared {
            guard let name = key.string, InputNames.variableName(name) == nil, name.utf8.count <= 64 else {
                report(key, "parameter '\(key.string?.prefix(64) ?? "")': a name is up to 64 ASCII letters, digits and '_', not starting with a digit")
                continue
            }
            var param = PipelineParam(name: name)
            if let scalar = value.scalar, scalar.string.isEmpty {
                out.append(param)
                continue
            }
            guard let entries = mapping(value, "params.\(name)", keys: keys) else { continue }
            if let text = string(entries["type"], "params.\(name).type") {
                if let type = PipelineParam.Kind(rawValue: text) { param.type = type } else {
                    let kinds = PipelineParam.Kind.allCases.map(\.rawValue)
                    report(entries["type"]?.value, "params.\(name).type '\(text)' is not one of \(kinds.joined(separator: ", "))\(Suggestion.hint(for: text, in: kinds))")
                }
            }
            param.required = bool(entries["required"], "params.\(name).required") ?? false
            param.multiline = bool(entries["multiline"], "params.\(name).multiline") ?? false
            param.description = string(entries["description"], "params.\(name).description")
            param.pattern = string(entries["pattern"], "params.\(name).pattern")
            if let values = entries["values"] { param.values = strings(values, "params.\(name).values") }
            if let entry = entries["default"] {
                param.defaultValue = string(entry, "params.\(name).default")
                if param.required { report(entry.value, "params.\(name): a required parameter has no default; drop one of them") }
                if let value = param.defaultValue, let problem = param.problem(with: value) {
                    report(entry.value, "params.\(name).default \(problem)")
                }
            }
            out.append(param)
        }
        return out
    }

    /// Nodes of each step by id, for placing graph errors.
    var stepNodes: [String: Node] = [:]
    var needsNodes: [String: [String: Node]] = [:]

    mutating func steps(_ node: Node, _ section: String, timeout: Duration, retry: RetryPolicy) -> [PipelineStep] {
        guard let sequence = node.sequence else {
            report(node, "\(section) must be a list of steps")
            return []
        }
        let stepKeys = ["id", "name", "kind", "needs", "when", "if", "timeout", "retry", "with"]
        var out: [PipelineStep] = []
        for item in sequence {
            guard let entries = mapping(item, "a step of \(section)", keys: stepKeys) else { continue }
            guard let id = string(entries["id"], "id") else {
                report(item, "a step of \(section) has no 'id'; give every step a unique id")
                continue
            }
            if !Identifiers.isValidStepID(id) {
                report(entries["id"]?.value, "step id '\(id)' must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit")
            }
            if let previous = stepNodes[id] {
                report(entries["id"]?.value, "duplicate step id '\(id)' (first defined at line \(previous.mark?.line ?? 0))")
                continue
            }
            stepNodes[id] = entries["id"]!.value
            var step = PipelineStep(id: id, kind: "", timeout: timeout, retry: retry, line: item.mark?.line ?? 0, column: item.mark?.column ?? 0)
            if let kind = string(entries["kind"], "kind") {
                step.kind = kind
                if !knownKinds.contains(kind) {
                    report(entries["kind"]?.value, "unknown step kind '\(kind)'\(Suggestion.hint(for: kind, in: knownKinds.sorted())); known kinds: \(knownKinds.sorted().joined(separator: ", "))")
                }
            } else {
                report(item, "step '\(id)' has no 'kind'; e.g. kind: build")
            }
            step.needs = strings(entries["needs"], "needs")
            if let needs = entries["needs"] {
                var nodes: [String: Node] = [:]
                for node in needs.value.sequence ?? [needs.value] { if let name = node.string { nodes[name] = node } }
                needsNodes[id] = nodes
                if section == "finally", !step.needs.isEmpty {
                    report(needs.key, "step '\(id)' is in finally and cannot have needs: finally steps run after everything else, in order")
                }
            }
            if let when = entries["when"], let whenEntries = mapping(when.value, "when", keys: ["paths"]) {
                step.paths = strings(whenEntries["paths"], "when.paths")
                // Bounded, so that matching them against every changed file stays cheap.
                if step.paths.count > 64 { report(whenEntries["paths"]?.value, "when.paths of step '\(id)' has \(step.paths.count) patterns; at most 64") }
                for pattern in step.paths where pattern.utf8.count > 256 || pattern.utf8.filter({ $0 == UInt8(ascii: "*") }).count > 16 {
                    report(whenEntries["paths"]?.value, "when.paths of step '\(id)': '\(pattern.prefix(40))…' is longer than 256 characters or has more than 16 '*'")
                }
            }
            step.condition = string(entries["if"], "if")
            if let condition = step.condition { checkExpressions(in: condition, node: entries["if"]!.value, stepID: id) }
            if let value = self.timeout(entries["timeout"], "timeout of step '\(id)'") { step.timeout = value }
            if let retry = entries["retry"] { step.retry = self.retry(retry.value, "retry of step '\(id)'", base: step.retry) }
            if let with = entries["with"] {
                if case .object(let object) = json(with.value, stepID: id) {
                    step.inputs = object
                } else {
                    report(with.value, "with of step '\(id)' must be a mapping of inputs")
                }
            }
            // A `with:` that is not a mapping was reported above.
            if let schema = StepInputSchemas.schema(for: step.kind), entries["with"]?.value.mapping != nil || entries["with"] == nil {
                // With no `with:` at all, the step is checked as if it gave an empty one
                // (its required inputs are then reported at the step).
                var checker = InputSchemaChecker(file: file, stepID: id, kind: step.kind)
                checker.check(entries["with"]?.value ?? Node.mapping(Node.Mapping([], .implicit, .block, item.mark)), against: schema, path: "with")
                diagnostics += checker.diagnostics
            }
            if step.kind == "approval" { checkApproval(step, entries["with"]?.value ?? item) }
            if step.kind == "metrics-watch", let with = entries["with"]?.value { checkMetricConditions(step, with) }
            out.append(step)
        }
        return out
    }

    /// A metrics watch's `success` and `failure` conditions, parsed now so that a typo
    /// fails the submit rather than the watch after a deployment.
    mutating func checkMetricConditions(_ step: PipelineStep, _ with: Node) {
        guard let metrics = with["metrics"]?.sequence else { return }
        for (index, metric) in metrics.enumerated() {
            for key in ["success", "failure"] {
                guard let node = metric[key], let text = node.string else { continue }
                do {
                    _ = try MetricCondition(text)
                } catch {
                    report(node, "metrics-watch step '\(step.id)': metrics[\(index)].\(key) '\(text)': \(error)")
                }
            }
        }
    }

    /// An approval gate's settings: `required` approvers (a whole number from 1), `timeout`
    /// (every wait has a deadline), `approvers` (names), `distinct_from_submitter` (true or false).
    mutating func checkApproval(_ step: PipelineStep, _ node: Node) {
        let known = ["required", "timeout", "approvers", "distinct_from_submitter"]
        for key in step.inputs.keys.sorted() where !known.contains(key) {
            report(node, "approval step '\(step.id)': unknown setting '\(key)'\(Suggestion.hint(for: key, in: known)); known: \(known.joined(separator: ", "))")
        }
        if let required = step.inputs["required"], (required.intValue ?? 0) < 1 {
            report(node, "approval step '\(step.id)': required must be a whole number from 1")
        }
        if let timeout = step.inputs["timeout"] {
            if let text = timeout.stringValue {
                do {
                    if try DurationParser.parse(text) <= .zero { report(node, "approval step '\(step.id)': timeout must be more than 0, e.g. 4h") }
                } catch {
                    report(node, "approval step '\(step.id)': timeout: \(error)")
                }
            } else {
                report(node, "approval step '\(step.id)': timeout must be a duration, e.g. 4h")
            }
        } else {
            report(node, "approval step '\(step.id)' has no timeout; every wait needs a deadline, e.g. timeout: 4h")
        }
        if let approvers = step.inputs["approvers"] {
            var isListOfNames = false
            if case .array(let names) = approvers { isListOfNames = names.allSatisfy { $0.stringValue != nil } }
            if !isListOfNames { report(node, "approval step '\(step.id)': approvers must be a list of names") }
        }
        if let distinct = step.inputs["distinct_from_submitter"], distinct.boolValue == nil {
            report(node, "approval step '\(step.id)': distinct_from_submitter must be true or false")
        }
    }

    mutating func retry(_ node: Node, _ what: String, base: RetryPolicy) -> RetryPolicy {
        var policy = base
        guard let entries = mapping(node, what, keys: ["max_attempts", "backoff", "on_exit_codes"]) else { return policy }
        if let text = string(entries["max_attempts"], "\(what).max_attempts") {
            if let number = Int(text), (1...100).contains(number) {
                policy.maxAttempts = number
            } else {
                report(entries["max_attempts"]?.value, "\(what).max_attempts must be a whole number from 1 to 100")
            }
        }
        if let backoff = entries["backoff"], let backoffEntries = mapping(backoff.value, "\(what).backoff", keys: ["initial", "max", "jitter"]) {
            if let initial = duration(backoffEntries["initial"], "\(what).backoff.initial") { policy.initial = initial }
            if let max = duration(backoffEntries["max"], "\(what).backoff.max") { policy.max = max }
            if policy.max < policy.initial {
                report(backoffEntries["max"]?.value ?? backoff.value,
                       "\(what).backoff.max \(DurationParser.format(policy.max)) is below backoff.initial \(DurationParser.format(policy.initial)); raise max or lower initial")
            }
            if let jitter = string(backoffEntries["jitter"], "\(what).backoff.jitter") {
                let options = RetryPolicy.Jitter.allCases.map(\.rawValue)
                if let value = RetryPolicy.Jitter(rawValue: jitter) {
                    policy.jitter = value
                } else {
                    report(backoffEntries["jitter"]?.value, "\(what).backoff.jitter '\(jitter)' is not one of \(options.joined(separator: ", "))\(Suggestion.hint(for: jitter, in: options))")
                }
            }
        }
        if let codes = entries["on_exit_codes"] {
            var set: Set<Int32> = []
            for text in strings(codes, "\(what).on_exit_codes") {
                if let code = Int32(text), (0...255).contains(code) { set.insert(code) } else {
                    report(codes.value, "\(what).on_exit_codes: '\(text)' is not an exit code (0-255)")
                }
            }
            policy.onExitCodes = set
        }
        return policy
    }

    /// A YAML node as JSON, checking the expressions in every text on the way.
    mutating func json(_ node: Node, stepID: String) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            checkExpressions(in: scalar.string, node: node, stepID: stepID)
            return PlainScalar.value(scalar)
        case .sequence(let sequence):
            return .array(sequence.map { json($0, stepID: stepID) })
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping { object[key.string ?? ""] = json(value, stepID: stepID) }
            return .object(object)
        }
    }

    // MARK: Expressions

    /// Checks each `${{ … }}` in `text`: it must name something that exists; a
    /// step's outputs must come from a step that runs before it (checked in `checkGraph`).
    mutating func checkExpressions(in text: String, node: Node, stepID: String) {
        var rest = Substring(text)
        while let open = rest.range(of: "${{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                report(node, "an expression in step '\(stepID)' opens '${{' but never closes it with '}}'")
                return
            }
            let expression = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            checkExpression(String(expression), node: node, stepID: stepID)
            rest = rest[close.upperBound...]
        }
    }

    var outputReferences: [(stepID: String, upstream: String, node: Node)] = []

    mutating func checkExpression(_ expression: String, node: Node, stepID: String) {
        let parts = expression.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let runFields = ["id", "sha", "short_sha", "ref", "environment", "pipeline", "submitter", "params",
                         "outcome", "started_at", "failed_steps"]
        switch parts.first {
        case "run":
            guard parts.count >= 2, runFields.contains(parts[1]) else {
                let field = parts.count >= 2 ? parts[1] : ""
                report(node, "'${{ \(expression) }}' in step '\(stepID)': run has no '\(field)'\(Suggestion.hint(for: field, in: runFields)); use run.id, run.sha, run.short_sha, run.ref, run.environment, run.pipeline, run.submitter, run.params.NAME, run.outcome, run.started_at or run.failed_steps")
                return
            }
            if parts[1] == "params", parts.count != 3 || parts[2].isEmpty {
                report(node, "'${{ \(expression) }}' in step '\(stepID)': name the parameter, e.g. run.params.region")
            } else if parts[1] == "params", !declaredParams.contains(parts[2]) {
                let known = declaredParams.sorted()
                report(node, "'${{ \(expression) }}' in step '\(stepID)': parameter '\(parts[2])' is not declared\(Suggestion.hint(for: parts[2], in: known)); declare it under params: (e.g. params: { \(parts[2]): { required: true } })")
            } else if parts[1] != "params", parts.count != 2 {
                report(node, "'${{ \(expression) }}' in step '\(stepID)': run.\(parts[1]) has no fields")
            }
        case "steps":
            guard parts.count == 4, parts[2] == "outputs", !parts[1].isEmpty, !parts[3].isEmpty else {
                report(node, "'${{ \(expression) }}' in step '\(stepID)': write steps.STEP_ID.outputs.NAME")
                return
            }
            if let problem = InputNames.outputName(parts[3]) {
                report(node, "'${{ \(expression) }}' in step '\(stepID)': '\(parts[3])' is not an output name: \(problem)")
                return
            }
            outputReferences.append((stepID, parts[1], node))
        case "secrets":
            guard parts.count == 2, !parts[1].isEmpty,
                  parts[1].unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }) else {
                report(node, "'${{ \(expression) }}' in step '\(stepID)': write secrets.NAME with NAME in capitals, digits and '_'")
                return
            }
        default:
            let root = parts.first ?? ""
            report(node, "'${{ \(expression) }}' in step '\(stepID)' refers to nothing: '\(root)'\(Suggestion.hint(for: root, in: ["run", "steps", "secrets"])) is not run, steps or secrets")
        }
    }

    // MARK: The graph

    mutating func checkGraph(_ definition: PipelineDefinition, stepNodes: [String: Node]) {
        let sections: [(name: String, steps: [PipelineStep])] = [("steps", definition.steps), ("on_failure", definition.onFailure), ("finally", definition.finally)]
        var sectionOf: [String: String] = [:]
        for section in sections { for step in section.steps { sectionOf[step.id] = section.name } }
        var needsOf: [String: [String]] = [:]
        for section in sections {
            for step in section.steps {
                var valid: [String] = []
                for need in step.needs {
                    let node = needsNodes[step.id]?[need] ?? stepNodes[step.id]
                    guard let other = sectionOf[need] else {
                        let candidates = section.steps.map(\.id).filter { $0 != step.id }
                        report(node, "step '\(step.id)' needs '\(need)', which is not a step\(Suggestion.hint(for: need, in: candidates))")
                        continue
                    }
                    if need == step.id {
                        report(node, "step '\(step.id)' needs itself")
                        continue
                    }
                    if other != section.name {
                        report(node, "step '\(step.id)' in \(section.name) needs '\(need)' from \(other); needs stay within one section")
                        continue
                    }
                    valid.append(need)
                }
                needsOf[step.id] = valid
            }
        }
        // Cycles: depth-first search, reporting each cycle once, at the step where it closes.
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var path: [String] = []
        var reported: Set<String> = []
        func visit(_ id: String, _ reader: inout Reader) {
            state[id] = 1
            path.append(id)
            for need in needsOf[id] ?? [] {
                if state[need] == 1, let start = path.firstIndex(of: need) {
                    let cycle = Array(path[start...]) + [need]
                    let key = Set(cycle).sorted().joined(separator: ",")
                    if reported.insert(key).inserted {
                        let links = zip(cycle, cycle.dropFirst()).map { "\($0) needs \($1)" }.joined(separator: ", ")
                        reader.report(reader.needsNodes[id]?[need] ?? stepNodes[id], "needs form a cycle: \(links)")
                    }
                } else if state[need] == nil {
                    visit(need, &reader)
                }
            }
            path.removeLast()
            state[id] = 2
        }
        for section in sections { for step in section.steps where state[step.id] == nil { visit(step.id, &self) } }
        // Outputs may only be read from a step that finished before: an ancestor through needs.
        func ancestors(of id: String) -> Set<String> {
            var seen: Set<String> = []
            var stack = needsOf[id] ?? []
            while let next = stack.popLast() {
                if seen.insert(next).inserted { stack += needsOf[next] ?? [] }
            }
            return seen
        }
        for reference in outputReferences {
            guard sectionOf[reference.upstream] != nil else {
                report(reference.node, "step '\(reference.stepID)' reads outputs of '\(reference.upstream)', which is not a step\(Suggestion.hint(for: reference.upstream, in: Array(sectionOf.keys)))")
                continue
            }
            let upstreamSection = sectionOf[reference.upstream]!
            let readerSection = sectionOf[reference.stepID] ?? "steps"
            // on_failure and finally run after the main steps, so any main step is upstream of them.
            let isUpstream = ancestors(of: reference.stepID).contains(reference.upstream)
                || (readerSection != "steps" && upstreamSection == "steps")
            if !isUpstream {
                report(reference.node, "step '\(reference.stepID)' reads outputs of '\(reference.upstream)', which does not run before it; add '\(reference.upstream)' to its needs")
            }
        }
    }
}
