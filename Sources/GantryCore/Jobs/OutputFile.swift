import Foundation

/// The file a command writes its outputs to, named by `$GANTRY_OUTPUT` — the
/// GitHub Actions `$GITHUB_OUTPUT` convention, so existing scripts work as they are:
///
/// ```sh
/// echo "image=registry.local/api:$GANTRY_SHA" >> "$GANTRY_OUTPUT"
/// { echo "notes<<EOF"; git log -3 --oneline; echo "EOF"; } >> "$GANTRY_OUTPUT"
/// ```
/// One `name=value` per line, or `name<<DELIMITER`, the value's lines, then the
/// delimiter alone on a line. A later line for the same name wins.
public enum OutputFile {
    /// A line that is neither form; `line` counts from 1.
    public struct FormatError: Error, Sendable, Equatable, CustomStringConvertible {
        public let line: Int
        public let problem: String
        public var description: String { "$GANTRY_OUTPUT line \(line): \(problem)" }
    }

    /// At most this many bytes are read; a larger file fails the step (outputs travel in the ledger).
    public static let maxBytes = 1 << 20

    public static func parse(_ text: String) throws(FormatError) -> [String: String] {
        var outputs: [String: String] = [:]
        // "\r\n" is one Character in Swift.
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        var index = 0
        while index < lines.count {
            let line = lines[index]
            let number = index + 1
            index += 1
            if line.allSatisfy(\.isWhitespace) { continue }
            let heredoc = line.range(of: "<<")
            let equals = line.firstIndex(of: "=")
            if let heredoc, equals.map({ heredoc.lowerBound < $0 }) ?? true {
                let name = String(line[..<heredoc.lowerBound])
                let delimiter = String(line[heredoc.upperBound...])
                try check(name, line: number)
                guard !delimiter.isEmpty else {
                    throw FormatError(line: number, problem: "'\(name)<<' needs a delimiter, as in \(name)<<EOF")
                }
                var value: [Substring] = []
                var closed = false
                while index < lines.count {
                    let next = lines[index]
                    index += 1
                    if next == delimiter {
                        closed = true
                        break
                    }
                    value.append(next)
                }
                guard closed else {
                    throw FormatError(line: number, problem: "'\(name)<<\(delimiter)' is never closed by a line '\(delimiter)'")
                }
                outputs[name] = value.joined(separator: "\n")
            } else if let equals {
                let name = String(line[..<equals])
                try check(name, line: number)
                outputs[name] = String(line[line.index(after: equals)...])
            } else {
                throw FormatError(line: number, problem: "'\(line.prefix(40))' is neither name=value nor name<<DELIMITER")
            }
        }
        return outputs
    }

    /// Output names as expressions can read them: letters, digits, `_` and `-`, not starting with a digit or `-`.
    private static func check(_ name: String, line: Int) throws(FormatError) {
        guard let first = name.first, first.isASCII, first.isLetter || first == "_",
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else {
            throw FormatError(line: line, problem: "'\(name.prefix(40))' is not an output name (letters, digits, '_' and '-', starting with a letter or '_')")
        }
    }
}
