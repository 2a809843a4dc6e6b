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

    public init(maxBytes: Int = 1 << 20, maxDepth: Int = 64, maxNodes: Int = 100_000) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxNodes = maxNodes
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
            case .scalar: break
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

/// An upper bound on a YAML text's nesting, read from the text alone.
///
/// Flow collections (`[`, `{`) count one level each; block nesting is bounded by a line's
/// indentation plus its `- ` and `? ` indicators (a nested block collection is indented
/// further, or opens with an indicator). Quoted scalars, comments and the content of block
/// scalars (`|`, `>`) are skipped, so braces in a script do not count. The bound is loose
/// (twice the limit in columns) because the exact depth is checked on the composed tree;
/// its job is only to keep the recursive composer far from the end of its stack.
enum NestingScan {
    static func firstPlaceDeeperThan(_ limit: Int, in text: String) -> (line: Int, column: Int)? {
        let bytes = Array(text.utf8)
        let space = UInt8(ascii: " "), newline = UInt8(ascii: "\n"), hash = UInt8(ascii: "#")
        let dash = UInt8(ascii: "-"), questionMark = UInt8(ascii: "?"), colon = UInt8(ascii: ":")
        let openSquare = UInt8(ascii: "["), openCurly = UInt8(ascii: "{")
        let closeSquare = UInt8(ascii: "]"), closeCurly = UInt8(ascii: "}")
        let doubleQuote = UInt8(ascii: "\""), singleQuote = UInt8(ascii: "'"), backslash = UInt8(ascii: "\\")
        let pipe = UInt8(ascii: "|"), greater = UInt8(ascii: ">")
        let columnLimit = 2 * limit

        var index = 0
        var line = 1
        var flow = 0
        var quote: UInt8?
        /// Inside a block scalar: lines indented more than this belong to it.
        var blockScalarParent: Int?

        while index < bytes.count {
            // At the start of a line.
            let lineStart = index
            var indent = 0
            while index < bytes.count, bytes[index] == space { indent += 1; index += 1 }
            if let parent = blockScalarParent, quote == nil {
                let blank = index >= bytes.count || bytes[index] == newline || bytes[index] == UInt8(ascii: "\r")
                if blank || indent > parent {
                    while index < bytes.count, bytes[index] != newline { index += 1 }
                    index += 1
                    line += 1
                    continue
                }
                blockScalarParent = nil
            }
            var prefix = indent
            if quote == nil && flow == 0 {
                // `- ` and `? ` indicators each open a level on the same line.
                while index + 1 < bytes.count, bytes[index] == dash || bytes[index] == questionMark, bytes[index + 1] == space {
                    index += 2
                    prefix += 2
                    while index < bytes.count, bytes[index] == space { index += 1; prefix += 1 }
                }
            }
            if prefix > columnLimit {
                return (line, prefix + 1)
            }
            // The rest of the line.
            var atValueStart = true
            var lastSignificant: UInt8 = 0
            while index < bytes.count, bytes[index] != newline {
                let byte = bytes[index]
                if let open = quote {
                    if open == doubleQuote, byte == backslash { index += 2; continue }
                    if byte == open {
                        if open == singleQuote, index + 1 < bytes.count, bytes[index + 1] == singleQuote { index += 2; continue }
                        quote = nil
                    }
                    index += 1
                    continue
                }
                let previous = index > lineStart ? bytes[index - 1] : space
                if byte == hash, previous == space || previous == UInt8(ascii: "\t") {
                    while index < bytes.count, bytes[index] != newline { index += 1 }
                    break
                }
                if flow > 0 || atValueStart {
                    if byte == openSquare || byte == openCurly {
                        flow += 1
                        if flow > limit {
                            return (line, index - lineStart + 1)
                        }
                        atValueStart = true
                        lastSignificant = byte
                        index += 1
                        continue
                    }
                    if byte == doubleQuote || byte == singleQuote {
                        quote = byte
                        atValueStart = false
                        index += 1
                        continue
                    }
                }
                if flow > 0, byte == closeSquare || byte == closeCurly {
                    flow -= 1
                } else if flow > 0, byte == UInt8(ascii: ",") {
                    atValueStart = true
                    lastSignificant = byte
                    index += 1
                    continue
                }
                if byte == colon, index + 1 >= bytes.count || bytes[index + 1] == space || bytes[index + 1] == newline {
                    atValueStart = true
                    lastSignificant = byte
                    index += 1
                    continue
                }
                if byte != space && byte != UInt8(ascii: "\t") {
                    // A block scalar's header: `|` or `>` starts the value, optionally with indicators.
                    if flow == 0, atValueStart, byte == pipe || byte == greater {
                        // Its content is indented further than the line's node (after any `- `).
                        blockScalarParent = prefix
                    } else if blockScalarParent != nil, flow == 0,
                              byte == dash || byte == UInt8(ascii: "+") || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")),
                              lastSignificant == pipe || lastSignificant == greater || lastSignificant == dash
                                || lastSignificant == UInt8(ascii: "+") || (lastSignificant >= UInt8(ascii: "0") && lastSignificant <= UInt8(ascii: "9")) {
                        // Still the header's indicators.
                    } else {
                        blockScalarParent = nil
                    }
                    atValueStart = false
                    lastSignificant = byte
                }
                index += 1
            }
            index += 1
            line += 1
        }
        return nil
    }
}
