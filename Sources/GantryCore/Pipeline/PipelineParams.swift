/// A run parameter the pipeline declares (`params:`), and the checks a submit's values
/// pass: a value for every required parameter, none for an undeclared one, each of its
/// type, on one line unless the parameter is `multiline`, within `values` or matching
/// `pattern`. What a file reads as `${{ run.params.NAME }}` is always declared, and gets
/// its `default` when the submit gives none.
///
/// ```yaml
/// params:
///   region:   { required: true, values: [eu-west-1, us-east-1] }
///   replicas: { type: integer, default: 2 }
///   canary:   { type: boolean, default: false }
///   release:  { pattern: "v*.*.*", description: "the tag to deploy" }
///   notes:    { multiline: true }
/// ```
///
/// `pattern` is a glob with the syntax of `when.paths` (`*`, `**`, `?`), matched in linear
/// time: a regular expression from a submitter's file could make the dispatcher backtrack.
public struct PipelineParam: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case string, integer, boolean
    }

    public var name: String
    public var type: Kind
    public var required: Bool
    public var defaultValue: String?
    public var values: [String]?
    public var pattern: String?
    public var multiline: Bool
    public var description: String?

    public init(
        name: String, type: Kind = .string, required: Bool = false, defaultValue: String? = nil, values: [String]? = nil,
        pattern: String? = nil, multiline: Bool = false, description: String? = nil
    ) {
        self.name = name
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
        self.values = values
        self.pattern = pattern
        self.multiline = multiline
        self.description = description
    }

    /// The longest value a parameter takes (bytes).
    public static let maxValueBytes = 4_096

    /// Why `value` does not fit this parameter, or nil.
    public func problem(with value: String) -> String? {
        if value.utf8.count > Self.maxValueBytes { return "is longer than \(Self.maxValueBytes) bytes" }
        if !multiline, value.contains(where: { $0 == "\n" || $0 == "\r" }) {
            return "is one line (declare it multiline: true to take several)"
        }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\t" && $0 != "\r" || $0.value == 0x7F }) {
            return "must not contain control characters"
        }
        switch type {
        case .string: break
        case .integer:
            if Int(value) == nil { return "'\(value.prefix(40))' is not a whole number" }
        case .boolean:
            if value != "true" && value != "false" { return "'\(value.prefix(40))' is not true or false" }
        }
        if let values, !values.contains(value) {
            return "'\(value.prefix(40))' is not one of \(values.joined(separator: ", "))\(Suggestion.hint(for: value, in: values))"
        }
        if let pattern, !PathGlob.matches(pattern, value) {
            return "'\(value.prefix(40))' does not match \(pattern)"
        }
        return nil
    }

    /// The values a run gets: those given, checked, with defaults for the rest. A failure
    /// names the parameter and what to do, in one line.
    public static func resolve(_ declared: [PipelineParam], given: [String: String]) -> Result<[String: String], ParamError> {
        let byName = Dictionary(declared.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for name in given.keys.sorted() where byName[name] == nil {
            let known = declared.map(\.name)
            let hint = known.isEmpty ? "the pipeline declares no parameters" : "it declares \(known.joined(separator: ", "))\(Suggestion.hint(for: name, in: known))"
            return .failure(ParamError("parameter '\(name.prefix(64))' is not declared under params: (\(hint))"))
        }
        var values: [String: String] = [:]
        for param in declared {
            if let value = given[param.name] {
                if let problem = param.problem(with: value) { return .failure(ParamError("parameter '\(param.name)' \(problem)")) }
                values[param.name] = value
            } else if let value = param.defaultValue {
                values[param.name] = value
            } else if param.required {
                return .failure(ParamError("parameter '\(param.name)' is required: give --param \(param.name)=VALUE\(param.description.map { " (\($0))" } ?? "")"))
            }
        }
        return .success(values)
    }
}

/// A submit's parameters that the pipeline refuses, in one line.
public struct ParamError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
