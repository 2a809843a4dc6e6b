import Yams

/// How much YAML a file from a submitter may make the server hold: pipelines and
/// environment policies are read with these bounds before anything else looks at them.
public struct YAMLLimits: Sendable, Equatable {
    /// The text's size in bytes (UTF-8).
    public var maxBytes: Int
    /// Nesting of mappings and sequences.
    public var maxDepth: Int
    /// Nodes, counting every node an alias repeats as often as it is repeated ("billion laughs").
    public var maxNodes: Int
    /// Bytes of text in all scalars, counted the same way (one large string repeated by aliases).
    public var maxExpandedBytes: Int

    public init(maxBytes: Int = 1 << 20, maxDepth: Int = 64, maxNodes: Int = 100_000, maxExpandedBytes: Int = 4 << 20) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
        self.maxExpandedBytes = maxExpandedBytes
    }
}

/// Reads YAML within `YAMLLimits`, so that hostile text costs milliseconds and no memory
/// to refuse.
///
/// Three checks, cheapest first: the size; a scan of the text that bounds its nesting before
/// the recursive composer sees it (libyaml has no nesting limit and Yams composes recursively,
/// so `[[[[…` a megabyte deep would overflow the stack); then, on the composed tree, a walk
/// that stops at the first node past the node or depth limit. The tree itself is small even
/// for an alias bomb (Yams shares an anchored node wherever it is named); only a walk
/// expands it, and this walk stops early.
enum BoundedYAML {
    /// The composed root (nil for an empty document), or the one problem that stopped it.
    static func compose(_ text: String, file: String, limits: YAMLLimits) -> Result<Node?, PipelineDiagnostic> {
        let bytes = text.utf8.count
        guard bytes <= limits.maxBytes else {
            return .failure(PipelineDiagnostic(file: file, line: 1, column: 1,
                message: "the file is \(bytes) bytes; files are limited to \(limits.maxBytes) bytes"))
        }
        if let (line, column) = NestingScan.firstPlaceDeeperThan(limits.maxDepth, in: text) {
            return .failure(PipelineDiagnostic(file: file, line: line, column: column,
                message: "nesting deeper than \(limits.maxDepth) levels; flatten the file"))
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            return .failure(diagnostic(for: error, file: file))
        } catch {
            return .failure(PipelineDiagnostic(file: file, line: 1, column: 1, message: "cannot read the file as YAML: \(error)"))
        }
        guard let root else { return .success(nil) }
        if let problem = walk(root, file: file, limits: limits) { return .failure(problem) }
        return .success(root)
    }

    static func diagnostic(for error: YamlError, file: String) -> PipelineDiagnostic {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return PipelineDiagnostic(file: file, line: mark.line, column: mark.column, message: "not valid YAML: \(problem)")
        default:
            return PipelineDiagnostic(file: file, line: 1, column: 1, message: "not valid YAML: \(error)")
        }
    }

    /// Counts nodes as a reader would visit them (aliases expanded), without recursion,
    /// stopping at the first one past a limit.
    private static func walk(_ root: Node, file: String, limits: YAMLLimits) -> PipelineDiagnostic? {
        var stack: [(node: Node, depth: Int)] = [(root, 1)]
        var count = 0
        var bytes = 0
        while let (node, depth) = stack.popLast() {
            count += 1
            if count > limits.maxNodes {
                return PipelineDiagnostic(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1,
                    message: "more than \(limits.maxNodes) values (aliases counted each time they are used); shorten the file")
            }
            if depth > limits.maxDepth {
                return PipelineDiagnostic(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1,
                    message: "nesting deeper than \(limits.maxDepth) levels; flatten the file")
            }
            switch node {
            case .scalar(let scalar):
                bytes += scalar.string.utf8.count
                if bytes > limits.maxExpandedBytes {
                    return PipelineDiagnostic(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1,
                        message: "more than \(limits.maxExpandedBytes) bytes of text (aliases counted each time they are used); shorten the file")
                }
            case .sequence(let sequence):
                for item in sequence { stack.append((item, depth + 1)) }
            case .mapping(let mapping):
                for (key, value) in mapping {
                    stack.append((key, depth + 1))
                    stack.append((value, depth + 1))
                }
            }
        }
        return nil
    }
}

/// An upper bound on a YAML text's nesting, read from the text alone, as libyaml's scanner
/// would read it.
///
/// Flow collections (`[`, `{`) count one level each; block nesting is bounded by a line's
/// indentation plus its `- `, `? ` and `: ` indicators (a nested block collection is indented
/// further, or opens with an indicator). Quoted scalars, comments and the content of block
/// scalars (`|`, `>`) are skipped, so braces in a script do not count.
///
/// The scan may count too much (a false refusal of an odd file) but must never count too
/// little, so where it is unsure it counts: a quote opens only where libyaml would start a
/// token (after `[`, `{`, `,`, `: `, an indicator, an anchor or a tag), every YAML line break
/// ends a line (CR, LF, NEL, LS, PS), and inside a flow collection every bracket counts. The
/// bound is loose (twice the limit in columns) because the exact depth is checked on the
/// composed tree; its job is only to keep the recursive composer far from the end of its stack.
enum NestingScan {
    private static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n")

    static func firstPlaceDeeperThan(_ limit: Int, in text: String) -> (line: Int, column: Int)? {
        let bytes = normalizedBreaks(text)
        let count = bytes.count
        let hash = UInt8(ascii: "#"), dash = UInt8(ascii: "-"), questionMark = UInt8(ascii: "?"), colon = UInt8(ascii: ":")
        let dot = UInt8(ascii: "."), comma = UInt8(ascii: ","), ampersand = UInt8(ascii: "&"), bang = UInt8(ascii: "!")
        let openSquare = UInt8(ascii: "["), openCurly = UInt8(ascii: "{")
        let closeSquare = UInt8(ascii: "]"), closeCurly = UInt8(ascii: "}")
        let doubleQuote = UInt8(ascii: "\""), singleQuote = UInt8(ascii: "'"), backslash = UInt8(ascii: "\\")
        let pipe = UInt8(ascii: "|"), greater = UInt8(ascii: ">")
        let columnLimit = 2 * limit
        func isBlank(_ index: Int) -> Bool { index >= count || bytes[index] == space || bytes[index] == tab || bytes[index] == newline }
        func isFlowIndicator(_ byte: UInt8) -> Bool {
            byte == comma || byte == openSquare || byte == closeSquare || byte == openCurly || byte == closeCurly
        }

        var index = 0
        var line = 1
        var flow = 0
        var quote: UInt8?
        var atValueStart = true
        /// Inside a block scalar: its parent's indentation, and its content's once a line showed it.
        var blockScalar: (parent: Int, content: Int?)?

        while index < count {
            let lineStart = index
            var indent = 0
            while index < count, bytes[index] == space || bytes[index] == tab { indent += 1; index += 1 }
            if let scalar = blockScalar {
                let blank = index >= count || bytes[index] == newline
                let content = scalar.content ?? (blank || indent <= scalar.parent ? nil : indent)
                if blank || (content != nil && indent >= content!) {
                    if scalar.content == nil, let content { blockScalar = (scalar.parent, content) }
                    while index < count, bytes[index] != newline { index += 1 }
                    index += 1
                    line += 1
                    continue
                }
                blockScalar = nil
            }
            var prefix = indent
            if quote == nil && flow == 0 {
                atValueStart = true
                // Document markers, then `- `, `? ` and `: ` indicators: each may open a level.
                if indent == 0, index + 2 < count, (bytes[index] == dash && bytes[index + 1] == dash && bytes[index + 2] == dash)
                    || (bytes[index] == dot && bytes[index + 1] == dot && bytes[index + 2] == dot), isBlank(index + 3) {
                    index += 3
                    prefix += 3
                }
                while index < count, bytes[index] == dash || bytes[index] == questionMark || bytes[index] == colon, isBlank(index + 1),
                      index + 1 < count, bytes[index + 1] != newline {
                    index += 2
                    prefix += 2
                    while index < count, bytes[index] == space || bytes[index] == tab { index += 1; prefix += 1 }
                }
            }
            if prefix > columnLimit { return (line, prefix + 1) }
            var lastClosed = false
            while index < count, bytes[index] != newline {
                let byte = bytes[index]
                if let open = quote {
                    if open == doubleQuote, byte == backslash { index += 2; continue }
                    if byte == open {
                        if open == singleQuote, index + 1 < count, bytes[index + 1] == singleQuote { index += 2; continue }
                        quote = nil
                        lastClosed = true
                        atValueStart = false
                    }
                    index += 1
                    continue
                }
                let previous = index > lineStart ? bytes[index - 1] : space
                if byte == hash, previous == space || previous == tab || index == lineStart {
                    while index < count, bytes[index] != newline { index += 1 }
                    break
                }
                if byte == space || byte == tab { index += 1; continue }
                if atValueStart {
                    // Properties keep the value ahead: `&anchor`, `!tag`.
                    if byte == ampersand || byte == bang {
                        while index < count, !isBlank(index), !(flow > 0 && isFlowIndicator(bytes[index])) { index += 1 }
                        continue
                    }
                    if byte == doubleQuote || byte == singleQuote {
                        quote = byte
                        index += 1
                        continue
                    }
                    if flow == 0, byte == pipe || byte == greater {
                        // An explicit indentation (`|2`) is not followed: its lines are scanned, which
                        // can only count too much.
                        let header = bytes[(index + 1)..<min(index + 3, count)]
                        if !header.contains(where: { (UInt8(ascii: "1")...UInt8(ascii: "9")).contains($0) }) { blockScalar = (prefix, nil) }
                        while index < count, bytes[index] != newline { index += 1 }
                        break
                    }
                }
                if byte == openSquare || byte == openCurly, flow > 0 || atValueStart {
                    flow += 1
                    if flow > limit { return (line, index - lineStart + 1) }
                    atValueStart = true
                    lastClosed = false
                    index += 1
                    continue
                }
                if flow > 0, byte == closeSquare || byte == closeCurly {
                    flow -= 1
                    atValueStart = false
                    lastClosed = true
                    index += 1
                    continue
                }
                if flow > 0, byte == comma {
                    atValueStart = true
                    lastClosed = false
                    index += 1
                    continue
                }
                if byte == colon, isBlank(index + 1) || (flow > 0 && (lastClosed || (index + 1 < count && isFlowIndicator(bytes[index + 1])))) {
                    atValueStart = true
                    lastClosed = false
                    index += 1
                    continue
                }
                atValueStart = false
                lastClosed = false
                index += 1
            }
            index += 1
            line += 1
        }
        return nil
    }

    /// The text's bytes with every line break libyaml knows (CR LF, CR, NEL, LS, PS) as one LF.
    private static func normalizedBreaks(_ text: String) -> [UInt8] {
        let input = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            let byte = input[index]
            if byte == UInt8(ascii: "\r") {
                output.append(newline)
                index += index + 1 < input.count && input[index + 1] == newline ? 2 : 1
            } else if byte == 0xC2, index + 1 < input.count, input[index + 1] == 0x85 {
                output.append(newline)
                index += 2
            } else if byte == 0xE2, index + 2 < input.count, input[index + 1] == 0x80, input[index + 2] == 0xA8 || input[index + 2] == 0xA9 {
                output.append(newline)
                index += 3
            } else {
                output.append(byte)
                index += 1
            }
        }
        return output
    }
}
