import Foundation
import Yams

/// What a step kind's `with:` may hold: every key it reads, with its type, whether it is
/// required, and the rules between keys. `gantry validate` and every submit check a step's
/// inputs against its kind's schema (`StepInputSchemas`), so that a misspelt key, a
/// missing field or a value of the wrong sort is refused at `file:line:column` before any
/// step of the run starts, rather than ignored (a weakened gate) or met on the worker
/// after earlier steps ran.
///
/// A value written as an expression (`${{ … }}`) is resolved on the worker; the schema
/// checks what is written out and accepts an expression wherever a value may stand.
public struct InputSchema: Sendable {
    public var fields: [InputField]
    /// Groups of keys of which at most one may be given (`run` or `script`).
    public var exclusive: [[String]]
    /// Groups of keys of which one must be given.
    public var oneRequired: [[String]]
    /// Problems between keys that the fields alone cannot say (a check on the whole mapping):
    /// each returns a message naming the keys, or nil.
    public var rules: [InputRule]

    public init(_ fields: [InputField], exclusive: [[String]] = [], oneRequired: [[String]] = [], rules: [InputRule] = []) {
        self.fields = fields
        self.exclusive = exclusive
        self.oneRequired = oneRequired
        self.rules = rules
    }

    public var keys: [String] { fields.map(\.name) }
}

/// A check over a whole mapping of inputs, as JSON (expressions unresolved): the message of
/// the problem, or nil.
public struct InputRule: Sendable {
    public let check: @Sendable ([String: JSONValue]) -> String?

    public init(_ check: @escaping @Sendable ([String: JSONValue]) -> String?) {
        self.check = check
    }
}

public struct InputField: Sendable {
    public var name: String
    public var type: InputType
    public var required: Bool

    public static func required(_ name: String, _ type: InputType) -> InputField {
        InputField(name: name, type: type, required: true)
    }

    public static func optional(_ name: String, _ type: InputType) -> InputField {
        InputField(name: name, type: type, required: false)
    }
}

/// The sort of value an input takes.
public indirect enum InputType: Sendable {
    /// Text: any scalar (a number or a boolean is read as its text).
    case text
    /// Text that must pass a check (the check returns the problem, or nil).
    case checkedText(String, @Sendable (String) -> String?)
    case integer(min: Int? = nil, max: Int? = nil)
    case number(min: Double? = nil, max: Double? = nil)
    case boolean
    /// A duration (`30s`, `5m`, `1h30m`), at least `min` (more than zero by default).
    case duration(min: Duration? = nil)
    /// One of these words.
    case oneOf([String])
    /// An absolute URL with one of these schemes.
    case url(schemes: [String])
    /// A list whose items are of one type, with at least `minCount` items.
    case list(InputType, minCount: Int = 0)
    /// A nested mapping with a schema of its own.
    case object(InputSchema)
    /// A mapping with keys of the writer's choosing (variables, headers), each checked by
    /// `keys` when given, values of one type.
    case map(InputType, keys: (@Sendable (String) -> String?)? = nil)
    /// Any of these (e.g. text or a list of text); the first that fits is taken.
    case either([InputType])
    /// Anything (a value passed on as it is, e.g. a webhook's JSON body).
    case any

    /// How the type is named in messages.
    var described: String {
        switch self {
        case .text: "text"
        case .checkedText(let what, _): what
        case .integer(let min, let max):
            switch (min, max) {
            case let (min?, max?): "a whole number from \(min) to \(max)"
            case let (min?, nil): "a whole number from \(min)"
            default: "a whole number"
            }
        case .number: "a number"
        case .boolean: "true or false"
        case .duration: "a duration such as 30s, 5m or 1h"
        case .oneOf(let words): "one of " + words.joined(separator: ", ")
        case .url(let schemes): "a URL (\(schemes.map { $0 + "://…" }.joined(separator: " or ")))"
        case .list(let item, _): "a list of \(item.plural)"
        case .object: "a mapping"
        case .map: "a mapping"
        case .either(let types): types.map(\.described).joined(separator: ", or ")
        case .any: "any value"
        }
    }

    private var plural: String {
        switch self {
        case .text: "text"
        case .object, .map: "mappings"
        default: described
        }
    }
}

/// Checks `with:` nodes against a schema, reporting each problem with its place.
struct InputSchemaChecker {
    let file: String
    let stepID: String
    let kind: String
    private(set) var diagnostics: [PipelineDiagnostic] = []

    init(file: String, stepID: String, kind: String) {
        self.file = file
        self.stepID = stepID
        self.kind = kind
    }

    mutating func check(_ node: Node, against schema: InputSchema, path: String) {
        guard let mapping = node.mapping else {
            report(node, "\(path) must be a mapping of \(schema.keys.joined(separator: ", "))")
            return
        }
        var given: [String: Node] = [:]
        var keyNodes: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string else {
                report(key, "\(path): keys must be text")
                continue
            }
            guard let field = schema.fields.first(where: { $0.name == name }) else {
                report(key, "\(path).\(name): unknown key for a \(kind) step\(Suggestion.hint(for: name, in: schema.keys)); known keys: \(schema.keys.joined(separator: ", "))")
                continue
            }
            given[name] = value
            keyNodes[name] = key
            check(value, field.type, path: "\(path).\(name)")
        }
        for field in schema.fields where field.required && given[field.name] == nil {
            report(node, "\(path).\(field.name) is required for a \(kind) step (\(field.type.described))")
        }
        for group in schema.exclusive {
            let present = group.filter { given[$0] != nil }
            if present.count > 1 {
                report(keyNodes[present[1]], "\(path): give one of \(group.joined(separator: ", ")), not \(present.joined(separator: " and "))")
            }
        }
        for group in schema.oneRequired where !group.contains(where: { given[$0] != nil }) {
            report(node, "\(path): give one of \(group.joined(separator: ", ")) for a \(kind) step")
        }
        if !schema.rules.isEmpty {
            let values = given.mapValues { InputSchemaChecker.json($0) }
            for rule in schema.rules {
                // A rule names the keys it is about (`with.url …`); others get the mapping's path.
                if let problem = rule.check(values) { report(node, problem.hasPrefix(path + ".") ? problem : "\(path): \(problem)") }
            }
        }
    }

    mutating func check(_ node: Node, _ type: InputType, path: String) {
        // An expression stands for a value of any sort; the worker checks what it resolves to.
        if let scalar = node.scalar, scalar.string.contains("${{") {
            if case .either(let types) = type, !types.contains(where: Self.takesScalar) {
                report(node, "\(path) must be \(type.described), not an expression")
            } else if !Self.takesScalar(type), !Self.isWholeExpression(scalar.string) {
                report(node, "\(path) must be \(type.described)")
            }
            return
        }
        switch type {
        case .any:
            return
        case .text:
            if node.scalar == nil { report(node, "\(path) must be text") }
        case .checkedText(let what, let rule):
            guard let text = node.scalar?.string else { return report(node, "\(path) must be \(what)") }
            if let problem = rule(text) { report(node, "\(path) '\(text.prefix(80))': \(problem)") }
        case .integer(let min, let max):
            guard let scalar = node.scalar, scalar.style == .plain, let value = Int(scalar.string),
                  min.map({ value >= $0 }) ?? true, max.map({ value <= $0 }) ?? true
            else { return report(node, "\(path) must be \(type.described)") }
        case .number(let min, let max):
            guard let scalar = node.scalar, scalar.style == .plain, let value = Double(scalar.string), value.isFinite,
                  min.map({ value >= $0 }) ?? true, max.map({ value <= $0 }) ?? true
            else { return report(node, "\(path) must be a number\(Self.range(min, max))") }
        case .boolean:
            guard let scalar = node.scalar, PlainScalar.bool(scalar) != nil else {
                return report(node, "\(path) must be true or false")
            }
        case .duration(let min):
            guard let text = node.scalar?.string else { return report(node, "\(path) must be \(type.described)") }
            do {
                let value = try DurationParser.parse(text)
                if let min, value < min {
                    report(node, "\(path) '\(text)' must be at least \(DurationParser.format(min))")
                } else if min == nil, value <= .zero {
                    report(node, "\(path) '\(text)' must be more than 0")
                }
            } catch {
                report(node, "\(path): \(error)")
            }
        case .oneOf(let words):
            guard let text = node.scalar?.string, words.contains(text) else {
                let text = node.scalar?.string ?? ""
                return report(node, "\(path) '\(text.prefix(80))' must be one of \(words.joined(separator: ", "))\(Suggestion.hint(for: text, in: words))")
            }
        case .url(let schemes):
            guard let text = node.scalar?.string, let problem = Self.urlProblem(text, schemes: schemes) else {
                if node.scalar == nil { report(node, "\(path) must be \(type.described)") }
                return
            }
            report(node, "\(path) '\(text.prefix(80))': \(problem)")
        case .list(let item, let minCount):
            guard let sequence = node.sequence else {
                return report(node, "\(path) must be \(type.described)")
            }
            if sequence.count < minCount {
                report(node, "\(path) needs at least \(minCount) item\(minCount == 1 ? "" : "s")")
            }
            for (index, element) in sequence.enumerated() {
                check(element, item, path: "\(path)[\(index)]")
            }
        case .object(let schema):
            check(node, against: schema, path: path)
        case .map(let value, let keyRule):
            guard let mapping = node.mapping else { return report(node, "\(path) must be a mapping") }
            for (key, element) in mapping {
                guard let name = key.string else {
                    report(key, "\(path): keys must be text")
                    continue
                }
                if let problem = keyRule?(name) { report(key, "\(path).\(name): \(problem)") }
                check(element, value, path: "\(path).\(name)")
            }
        case .either(let types):
            // The first type whose checks all pass; otherwise say what fits.
            for candidate in types {
                var trial = InputSchemaChecker(file: file, stepID: stepID, kind: kind)
                trial.check(node, candidate, path: path)
                if trial.diagnostics.isEmpty { return }
            }
            report(node, "\(path) must be \(type.described)")
        }
    }

    private mutating func report(_ node: Node?, _ message: String) {
        diagnostics.append(PipelineDiagnostic(
            file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1,
            message: "step '\(stepID)': \(message)"
        ))
    }

    static func takesScalar(_ type: InputType) -> Bool {
        switch type {
        case .list, .object, .map: false
        case .either(let types): types.contains(where: takesScalar)
        default: true
        }
    }

    static func isWholeExpression(_ text: String) -> Bool {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        return trimmed.hasPrefix("${{") && trimmed.hasSuffix("}}") && trimmed.components(separatedBy: "${{").count == 2
    }

    static func range(_ min: Double?, _ max: Double?) -> String {
        switch (min, max) {
        case let (min?, max?): " from \(Self.short(min)) to \(Self.short(max))"
        case let (min?, nil): " of at least \(Self.short(min))"
        case let (nil, max?): " of at most \(Self.short(max))"
        default: ""
        }
    }

    private static func short(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    /// Nil when `text` is an absolute URL with a host and one of `schemes`.
    static func urlProblem(_ text: String, schemes: [String]) -> String? {
        guard let colon = text.range(of: "://") else {
            return "must be a URL such as \(schemes.first ?? "https")://host/path"
        }
        let scheme = text[..<colon.lowerBound].lowercased()
        guard schemes.contains(scheme) else {
            return "use \(schemes.map { $0 + "://" }.joined(separator: " or ")), not \(scheme)://"
        }
        let rest = text[colon.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let host = authority.split(separator: "@").last.map { $0.split(separator: ":").first ?? "" } ?? ""
        if host.isEmpty { return "has no host" }
        if text.contains(where: { $0 == " " || $0 == "\n" || $0 == "\t" }) { return "must not contain spaces" }
        return nil
    }

    /// A node as JSON, for rules over a whole mapping (scalars typed as the parser types them).
    static func json(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            return PlainScalar.value(scalar)
        case .sequence(let sequence):
            return .array(sequence.map(json))
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (key, value) in mapping { if let name = key.string { object[name] = json(value) } }
            return .object(object)
        }
    }
}
