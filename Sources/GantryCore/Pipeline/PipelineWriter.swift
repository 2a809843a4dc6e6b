import Yams

/// Writes a pipeline back as YAML in a canonical form: every setting spelt out
/// (defaults applied), texts quoted, keys in a fixed order. Reading the output
/// gives the same definition, so a stored pipeline can be shown exactly as it ran.
public enum PipelineWriter {
    public static func yaml(_ definition: PipelineDefinition) throws -> String {
        try Yams.serialize(node: node(definition), sortKeys: false)
    }

    static func node(_ definition: PipelineDefinition) -> Node {
        var pairs: [(Node, Node)] = [(key("pipeline"), text(definition.name))]
        if let environment = definition.environment { pairs.append((key("environment"), text(environment))) }
        pairs.append((key("timeout"), plain(DurationParser.format(definition.timeout))))
        var gates: [(Node, Node)] = []
        if let confirm = definition.confirm { gates.append((key("confirm"), text(confirm))) }
        if let promote = definition.promoteFrom { gates.append((key("promote_from"), text(promote))) }
        if !gates.isEmpty { pairs.append((key("gates"), .mapping(.init(gates)))) }
        var concurrency: [(Node, Node)] = []
        if let group = definition.concurrencyGroup { concurrency.append((key("group"), text(group))) }
        concurrency.append((key("on_busy"), plain(definition.onBusy.rawValue)))
        pairs.append((key("concurrency"), .mapping(.init(concurrency))))
        if !definition.params.isEmpty {
            pairs.append((key("params"), .mapping(.init(definition.params.map { param in
                var settings: [(Node, Node)] = [(key("type"), plain(param.type.rawValue))]
                if param.required { settings.append((key("required"), plain("true"))) }
                if let value = param.defaultValue { settings.append((key("default"), text(value))) }
                if let values = param.values { settings.append((key("values"), .sequence(.init(values.map(text))))) }
                if let pattern = param.pattern { settings.append((key("pattern"), text(pattern))) }
                if param.multiline { settings.append((key("multiline"), plain("true"))) }
                if let description = param.description { settings.append((key("description"), text(description))) }
                return (key(param.name), .mapping(.init(settings)))
            }))))
        }
        pairs.append((key("steps"), .sequence(.init(definition.steps.map(node)))))
        if !definition.onFailure.isEmpty { pairs.append((key("on_failure"), .sequence(.init(definition.onFailure.map(node))))) }
        if !definition.finally.isEmpty { pairs.append((key("finally"), .sequence(.init(definition.finally.map(node))))) }
        return .mapping(.init(pairs))
    }

    static func node(_ step: PipelineStep) -> Node {
        var pairs: [(Node, Node)] = [(key("id"), text(step.id)), (key("kind"), text(step.kind))]
        if !step.needs.isEmpty { pairs.append((key("needs"), .sequence(.init(step.needs.map(text))))) }
        if !step.paths.isEmpty {
            pairs.append((key("when"), .mapping(.init([(key("paths"), .sequence(.init(step.paths.map(text))))]))))
        }
        if let condition = step.condition { pairs.append((key("if"), text(condition))) }
        pairs.append((key("timeout"), plain(DurationParser.format(step.timeout))))
        var backoff: [(Node, Node)] = [
            (key("initial"), plain(DurationParser.format(step.retry.initial))),
            (key("max"), plain(DurationParser.format(step.retry.max))),
            (key("jitter"), plain(step.retry.jitter.rawValue)),
        ]
        backoff.sort { ($0.0.string ?? "") < ($1.0.string ?? "") }
        var retry: [(Node, Node)] = [(key("max_attempts"), plain(String(step.retry.maxAttempts))), (key("backoff"), .mapping(.init(backoff)))]
        if let codes = step.retry.onExitCodes {
            retry.append((key("on_exit_codes"), .sequence(.init(codes.sorted().map { plain(String($0)) }))))
        }
        pairs.append((key("retry"), .mapping(.init(retry))))
        if !step.inputs.isEmpty { pairs.append((key("with"), node(JSONValue.object(step.inputs)))) }
        return .mapping(.init(pairs))
    }

    static func node(_ value: JSONValue) -> Node {
        switch value {
        case .null: return plain("null")
        case .bool(let flag): return plain(flag ? "true" : "false")
        case .number: return plain(value.jsonText)
        case .string(let string): return text(string)
        case .array(let items): return .sequence(.init(items.map(node)))
        case .object(let object): return .mapping(.init(object.keys.sorted().map { (text($0), node(object[$0]!)) }))
        }
    }

    private static func key(_ name: String) -> Node { .scalar(.init(name)) }
    private static func plain(_ value: String) -> Node { .scalar(.init(value, .implicit, .plain)) }
    /// Texts are always double-quoted, so `"3"`, `"yes"` or `"null"` stay texts.
    private static func text(_ value: String) -> Node { .scalar(.init(value, .implicit, .doubleQuoted)) }
}
