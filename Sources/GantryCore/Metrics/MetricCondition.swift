/// The success and failure conditions of a metrics watch: a small expression
/// language over one number, `result` — comparisons, `and`/`or`/`not` (or
/// `&&`/`||`/`!`), parentheses, arithmetic and `isNaN(result)`. Nothing else:
/// no names but `result`, no functions but `isNaN` and `abs`, no code execution.
///
/// ```
/// result < 0.01
/// result >= 0.95 and result <= 1
/// not isNaN(result) && abs(result - 200) < 50
/// ```
/// Parsed once, when the pipeline is validated; evaluated per measurement.
public struct MetricCondition: Sendable, Equatable, CustomStringConvertible {
    indirect enum Node: Sendable, Equatable {
        case number(Double)
        case result
        case unary(String, Node)
        case binary(String, Node, Node)
        case call(String, Node)
    }

    public typealias ParseError = ExpressionError

    let root: Node
    public let description: String

    public init(_ text: String) throws(ParseError) {
        var parser = Parser(tokens: try Self.tokenize(text), length: text.count)
        root = try parser.parseOr()
        if let extra = parser.peek {
            throw ParseError(column: extra.column, problem: "unexpected '\(extra.text)'; join conditions with and / or")
        }
        guard Self.isBoolean(root) else {
            throw ParseError(column: 1, problem: "'\(text)' is a number, not a condition; compare it, e.g. result < 0.01")
        }
        description = text
    }

    /// Whether the condition holds for `result`. Comparisons with NaN are false.
    public func holds(for result: Double) -> Bool {
        Self.truth(Self.evaluate(root, result))
    }

    // MARK: Evaluation

    private static func evaluate(_ node: Node, _ result: Double) -> Double {
        switch node {
        case .number(let value): return value
        case .result: return result
        case .unary("-", let operand): return -evaluate(operand, result)
        case .unary(_, let operand): return truth(evaluate(operand, result)) ? 0 : 1
        case .call("isNaN", let argument): return evaluate(argument, result).isNaN ? 1 : 0
        case .call(_, let argument): return abs(evaluate(argument, result))
        case .binary(let op, let left, let right):
            switch op {
            case "and": return truth(evaluate(left, result)) && truth(evaluate(right, result)) ? 1 : 0
            case "or": return truth(evaluate(left, result)) || truth(evaluate(right, result)) ? 1 : 0
            default: break
            }
            let a = evaluate(left, result), b = evaluate(right, result)
            switch op {
            case "<": return a < b ? 1 : 0
            case "<=": return a <= b ? 1 : 0
            case ">": return a > b ? 1 : 0
            case ">=": return a >= b ? 1 : 0
            case "==": return a == b ? 1 : 0
            case "!=": return a != b ? 1 : 0
            case "+": return a + b
            case "-": return a - b
            case "*": return a * b
            default: return a / b
            }
        }
    }

    private static func truth(_ value: Double) -> Bool { value != 0 && !value.isNaN }

    private static func isBoolean(_ node: Node) -> Bool {
        switch node {
        case .binary(let op, _, _): return ["and", "or", "<", "<=", ">", ">=", "==", "!="].contains(op)
        case .unary("not", _), .call("isNaN", _): return true
        default: return false
        }
    }

    // MARK: Tokens

    struct Token: Equatable {
        enum Kind: Equatable { case number(Double), word, symbol }
        var kind: Kind
        var text: String
        var column: Int
    }

    static func tokenize(_ text: String) throws(ParseError) -> [Token] {
        let chars = Array(text)
        var tokens: [Token] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            let column = i + 1
            if c.isWhitespace { i += 1; continue }
            if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                var j = i
                while j < chars.count, chars[j].isNumber || chars[j] == "." || chars[j] == "e" || chars[j] == "E"
                    || ((chars[j] == "-" || chars[j] == "+") && j > i && (chars[j - 1] == "e" || chars[j - 1] == "E")) { j += 1 }
                let literal = String(chars[i..<j])
                guard let value = Double(literal) else { throw ParseError(column: column, problem: "'\(literal)' is not a number") }
                tokens.append(Token(kind: .number(value), text: literal, column: column))
                i = j
            } else if c.isLetter || c == "_" {
                var j = i
                while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" { j += 1 }
                tokens.append(Token(kind: .word, text: String(chars[i..<j]), column: column))
                i = j
            } else {
                let two = i + 1 < chars.count ? String(chars[i...i + 1]) : ""
                if ["<=", ">=", "==", "!=", "&&", "||"].contains(two) {
                    tokens.append(Token(kind: .symbol, text: two, column: column))
                    i += 2
                } else if "<>()+-*/!".contains(c) {
                    tokens.append(Token(kind: .symbol, text: String(c), column: column))
                    i += 1
                } else {
                    throw ParseError(column: column, problem: "'\(c)' has no meaning here; use result, numbers, < <= > >= == !=, and, or, not, + - * /, ( )")
                }
            }
        }
        return tokens
    }

    // MARK: Grammar: or → and → not → comparison → sum → product → unary → primary

    struct Parser {
        var tokens: [Token]
        var length: Int
        var index = 0

        var peek: Token? { index < tokens.count ? tokens[index] : nil }

        mutating func take(_ texts: [String]) -> Token? {
            guard let token = peek, texts.contains(token.text) else { return nil }
            index += 1
            return token
        }

        mutating func parseOr() throws(ParseError) -> Node {
            var node = try parseAnd()
            while take(["or", "||"]) != nil { node = .binary("or", node, try parseAnd()) }
            return node
        }

        mutating func parseAnd() throws(ParseError) -> Node {
            var node = try parseNot()
            while take(["and", "&&"]) != nil { node = .binary("and", node, try parseNot()) }
            return node
        }

        mutating func parseNot() throws(ParseError) -> Node {
            if take(["not", "!"]) != nil { return .unary("not", try parseNot()) }
            return try parseComparison()
        }

        mutating func parseComparison() throws(ParseError) -> Node {
            let left = try parseSum()
            if let op = take(["<", "<=", ">", ">=", "==", "!="]) {
                let right = try parseSum()
                if let again = peek, ["<", "<=", ">", ">=", "==", "!="].contains(again.text) {
                    throw ParseError(column: again.column, problem: "comparisons do not chain; write a < result and result < b")
                }
                return .binary(op.text, left, right)
            }
            return left
        }

        mutating func parseSum() throws(ParseError) -> Node {
            var node = try parseProduct()
            while let op = take(["+", "-"]) { node = .binary(op.text, node, try parseProduct()) }
            return node
        }

        mutating func parseProduct() throws(ParseError) -> Node {
            var node = try parseUnary()
            while let op = take(["*", "/"]) { node = .binary(op.text, node, try parseUnary()) }
            return node
        }

        mutating func parseUnary() throws(ParseError) -> Node {
            if take(["-"]) != nil { return .unary("-", try parseUnary()) }
            return try parsePrimary()
        }

        mutating func parsePrimary() throws(ParseError) -> Node {
            guard let token = peek else { throw ParseError(column: length + 1, problem: "the condition ends too early") }
            index += 1
            switch token.kind {
            case .number(let value): return .number(value)
            case .word where token.text == "result": return .result
            case .word where token.text == "isNaN" || token.text == "abs":
                guard take(["("]) != nil else { throw ParseError(column: token.column, problem: "\(token.text) needs parentheses: \(token.text)(result)") }
                let argument = try parseSum()
                guard take([")"]) != nil else { throw ParseError(column: peek?.column ?? length + 1, problem: "missing ')'") }
                return .call(token.text, argument)
            case .word:
                throw ParseError(column: token.column, problem: "unknown name '\(token.text)'; the value is called result")
            case .symbol where token.text == "(":
                let inner = try parseOr()
                guard take([")"]) != nil else { throw ParseError(column: peek?.column ?? length + 1, problem: "missing ')'") }
                return inner
            case .symbol:
                throw ParseError(column: token.column, problem: "unexpected '\(token.text)'")
            }
        }
    }
}
