import Foundation

/// Samples read from a Prometheus text exposition (`/metrics`, format 0.0.4),
/// and the small query language the `scrape` provider of a metrics watch
/// evaluates over two of them:
///
/// ```
/// rate(http_requests_total{code=~"5.."}) / rate(http_requests_total)
/// queue_depth{queue="deploys"}
/// 1 - rate(checks_passed_total) / rate(checks_total)
/// ```
/// A selector is a metric name with optional matchers (`=`, `!=`, `=~`, `!~`);
/// alone it is the sum of the matching series now, inside `rate(…)` the sum of
/// their per-second increase since the previous scrape (a counter that went down
/// was reset and counts from zero). `+ - * /`, numbers and parentheses combine them.
public struct Exposition: Sendable, Equatable {
    public struct Sample: Sendable, Equatable {
        public var name: String
        public var labels: [String: String]
        public var value: Double

        public init(name: String, labels: [String: String], value: Double) {
            self.name = name
            self.labels = labels
            self.value = value
        }
    }

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let line: Int
        public let problem: String
        public var description: String { "line \(line): \(problem)" }
    }

    public var samples: [Sample]

    public init(samples: [Sample]) {
        self.samples = samples
    }

    public static func parse(_ text: String) throws(ParseError) -> Exposition {
        var samples: [Sample] = []
        var number = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let line = raw.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.hasPrefix("#") { continue }
            let chars = Array(line)
            var i = 0
            while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" || chars[i] == ":" { i += 1 }
            let name = String(chars[0..<i])
            guard !name.isEmpty else { throw ParseError(line: number, problem: "'\(line.prefix(40))' does not start with a metric name") }
            var labels: [String: String] = [:]
            if i < chars.count, chars[i] == "{" {
                i += 1
                while true {
                    while i < chars.count, chars[i] == " " || chars[i] == "," { i += 1 }
                    guard i < chars.count else { throw ParseError(line: number, problem: "labels of \(name) are not closed with }") }
                    if chars[i] == "}" { i += 1; break }
                    var j = i
                    while j < chars.count, chars[j] != "=" { j += 1 }
                    let label = String(chars[i..<j]).trimmingCharacters(in: .whitespaces)
                    guard j + 1 < chars.count, chars[j + 1] == "\"" else {
                        throw ParseError(line: number, problem: "label \(label) of \(name) has no quoted value")
                    }
                    j += 2
                    var value = ""
                    while j < chars.count, chars[j] != "\"" {
                        if chars[j] == "\\", j + 1 < chars.count {
                            j += 1
                            value.append(chars[j] == "n" ? "\n" : chars[j])
                        } else {
                            value.append(chars[j])
                        }
                        j += 1
                    }
                    guard j < chars.count else { throw ParseError(line: number, problem: "the value of label \(label) is not closed") }
                    labels[label] = value
                    i = j + 1
                }
            }
            let rest = String(chars[i...]).split(separator: " ", omittingEmptySubsequences: true)
            guard let text = rest.first, let value = parseValue(String(text)) else {
                throw ParseError(line: number, problem: "\(name) has no value")
            }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
        return Exposition(samples: samples)
    }

    /// A sample value as the format writes it (`1.5`, `+Inf`, `NaN`).
    public static func parseValue(_ text: String) -> Double? {
        switch text {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(text)
        }
    }

    public func hasMetric(_ name: String) -> Bool { samples.contains { $0.name == name } }
}

/// A query of the `scrape` provider (see `Exposition`), parsed once.
public struct ScrapeQuery: Sendable, CustomStringConvertible {
    struct Matcher: Sendable {
        var label: String
        var op: String
        var value: String
        var regex: NSRegularExpression?

        func matches(_ labels: [String: String]) -> Bool {
            let actual = labels[label] ?? ""
            switch op {
            case "=": return actual == value
            case "!=": return actual != value
            default:
                let range = NSRange(location: 0, length: (actual as NSString).length)
                let found = regex?.firstMatch(in: actual, range: range) != nil
                return op == "=~" ? found : !found
            }
        }
    }

    struct Selector: Sendable {
        var name: String
        var matchers: [Matcher]

        func series(_ exposition: Exposition) -> [Exposition.Sample] {
            exposition.samples.filter { sample in sample.name == name && matchers.allSatisfy { $0.matches(sample.labels) } }
        }
    }

    indirect enum Node: Sendable {
        case number(Double)
        case current(Selector)
        case rate(Selector)
        case binary(Character, Node, Node)
    }

    public typealias ParseError = ExpressionError

    let root: Node
    public let description: String

    public init(_ text: String) throws(ParseError) {
        var parser = QueryParser(chars: Array(text))
        root = try parser.parseSum()
        parser.skipSpaces()
        if parser.i < parser.chars.count {
            throw ParseError(column: parser.i + 1, problem: "unexpected '\(parser.chars[parser.i])'")
        }
        description = text
    }

    /// The value now; NaN when it cannot be known (a rate without an earlier scrape,
    /// a metric the endpoint does not expose, a division by zero).
    public func evaluate(current: Exposition, previous: Exposition?, seconds: Double) -> Double {
        evaluate(root, current, previous, seconds)
    }

    /// Metric names the query reads that `exposition` does not have.
    public func missing(in exposition: Exposition) -> [String] {
        var names: [String] = []
        func walk(_ node: Node) {
            switch node {
            case .number: break
            case .current(let s), .rate(let s): if !exposition.hasMetric(s.name), !names.contains(s.name) { names.append(s.name) }
            case .binary(_, let a, let b): walk(a); walk(b)
            }
        }
        walk(root)
        return names
    }

    private func evaluate(_ node: Node, _ current: Exposition, _ previous: Exposition?, _ seconds: Double) -> Double {
        switch node {
        case .number(let value):
            return value
        case .current(let selector):
            guard current.hasMetric(selector.name) else { return .nan }
            return selector.series(current).reduce(0) { $0 + $1.value }
        case .rate(let selector):
            guard let previous, seconds > 0, current.hasMetric(selector.name) else { return .nan }
            let before = Dictionary(selector.series(previous).map { ($0.labels, $0.value) }, uniquingKeysWith: { a, _ in a })
            var increase = 0.0
            for sample in selector.series(current) {
                let earlier = before[sample.labels] ?? 0
                // A counter that went down was reset: its whole value is new.
                increase += sample.value >= earlier ? sample.value - earlier : sample.value
            }
            return increase / seconds
        case .binary(let op, let a, let b):
            let x = evaluate(a, current, previous, seconds), y = evaluate(b, current, previous, seconds)
            switch op {
            case "+": return x + y
            case "-": return x - y
            case "*": return x * y
            default: return y == 0 ? .nan : x / y
            }
        }
    }

    struct QueryParser {
        var chars: [Character]
        var i = 0

        mutating func skipSpaces() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

        mutating func parseSum() throws(ParseError) -> Node {
            var node = try parseProduct()
            while true {
                skipSpaces()
                guard i < chars.count, chars[i] == "+" || chars[i] == "-" else { return node }
                let op = chars[i]
                i += 1
                node = .binary(op, node, try parseProduct())
            }
        }

        mutating func parseProduct() throws(ParseError) -> Node {
            var node = try parseFactor()
            while true {
                skipSpaces()
                guard i < chars.count, chars[i] == "*" || chars[i] == "/" else { return node }
                let op = chars[i]
                i += 1
                node = .binary(op, node, try parseFactor())
            }
        }

        mutating func parseFactor() throws(ParseError) -> Node {
            skipSpaces()
            guard i < chars.count else { throw ParseError(column: i + 1, problem: "the query ends too early") }
            if chars[i] == "(" {
                i += 1
                let inner = try parseSum()
                skipSpaces()
                guard i < chars.count, chars[i] == ")" else { throw ParseError(column: i + 1, problem: "missing ')'") }
                i += 1
                return inner
            }
            if chars[i].isNumber || chars[i] == "." {
                let start = i
                while i < chars.count, chars[i].isNumber || chars[i] == "." || chars[i] == "e" { i += 1 }
                guard let value = Double(String(chars[start..<i])) else {
                    throw ParseError(column: start + 1, problem: "'\(String(chars[start..<i]))' is not a number")
                }
                return .number(value)
            }
            let start = i
            let name = identifier()
            guard !name.isEmpty else { throw ParseError(column: start + 1, problem: "expected a metric name, rate(…), a number or '('") }
            skipSpaces()
            if name == "rate" || name == "value", i < chars.count, chars[i] == "(" {
                i += 1
                let selector = try parseSelector()
                skipSpaces()
                guard i < chars.count, chars[i] == ")" else { throw ParseError(column: i + 1, problem: "missing ')' after \(name)(\(selector.name)…") }
                i += 1
                return name == "rate" ? .rate(selector) : .current(selector)
            }
            i = start
            return .current(try parseSelector())
        }

        mutating func identifier() -> String {
            let start = i
            while i < chars.count, chars[i].isLetter || chars[i] == "_" || chars[i] == ":" || (i > start && chars[i].isNumber) { i += 1 }
            return String(chars[start..<i])
        }

        mutating func parseSelector() throws(ParseError) -> Selector {
            skipSpaces()
            let start = i
            let name = identifier()
            guard !name.isEmpty else { throw ParseError(column: start + 1, problem: "expected a metric name") }
            var matchers: [Matcher] = []
            skipSpaces()
            if i < chars.count, chars[i] == "{" {
                i += 1
                while true {
                    skipSpaces()
                    if i < chars.count, chars[i] == "}" { i += 1; break }
                    let labelStart = i
                    let label = identifier()
                    guard !label.isEmpty else { throw ParseError(column: labelStart + 1, problem: "expected a label name") }
                    skipSpaces()
                    var op = ""
                    for candidate in ["=~", "!~", "!=", "="] where String(chars[i..<min(chars.count, i + candidate.count)]) == candidate {
                        op = candidate
                        break
                    }
                    guard !op.isEmpty else { throw ParseError(column: i + 1, problem: "expected =, !=, =~ or !~ after \(label)") }
                    i += op.count
                    skipSpaces()
                    guard i < chars.count, chars[i] == "\"" else { throw ParseError(column: i + 1, problem: "the value of \(label) must be quoted") }
                    i += 1
                    var value = ""
                    while i < chars.count, chars[i] != "\"" {
                        if chars[i] == "\\", i + 1 < chars.count { i += 1 }
                        value.append(chars[i])
                        i += 1
                    }
                    guard i < chars.count else { throw ParseError(column: i + 1, problem: "the value of \(label) is not closed") }
                    i += 1
                    var regex: NSRegularExpression?
                    if op == "=~" || op == "!~" {
                        do { regex = try NSRegularExpression(pattern: "^(?:\(value))$") } catch {
                            throw ParseError(column: labelStart + 1, problem: "'\(value)' is not a regular expression")
                        }
                    }
                    matchers.append(Matcher(label: label, op: op, value: value, regex: regex))
                    skipSpaces()
                    if i < chars.count, chars[i] == "," { i += 1 }
                }
            }
            return Selector(name: name, matchers: matchers)
        }
    }
}
