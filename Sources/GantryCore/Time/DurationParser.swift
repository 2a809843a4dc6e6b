/// Parses and prints the durations users write in flags, pipelines and fleet
/// files: `500ms`, `2s`, `1m30s`, `4h`, `1d`.
public enum DurationParser {
    /// Why a duration string was refused; `description` is one line for the user.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let input: String
        public var description: String {
            "'\(input)' is not a duration: write a number and a unit (ms, s, m, h, d), e.g. 500ms, 2s, 1m30s"
        }
    }

    /// Parses `text` into a Duration; a bare number is refused (the unit is not guessed).
    public static func parse(_ text: String) throws(ParseError) -> Duration {
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty else { throw ParseError(input: text) }
        var total: Duration = .zero
        var index = trimmed.startIndex
        var sawComponent = false
        while index < trimmed.endIndex {
            let numberStart = index
            while index < trimmed.endIndex, trimmed[index].isASCII, trimmed[index].isNumber || trimmed[index] == "." {
                index = trimmed.index(after: index)
            }
            guard numberStart < index, let value = Double(trimmed[numberStart..<index]), value.isFinite else {
                throw ParseError(input: text)
            }
            let unitStart = index
            while index < trimmed.endIndex, trimmed[index].isLetter {
                index = trimmed.index(after: index)
            }
            let milliseconds: Double
            switch trimmed[unitStart..<index] {
            case "ms": milliseconds = value
            case "s": milliseconds = value * 1_000
            case "m": milliseconds = value * 60_000
            case "h": milliseconds = value * 3_600_000
            case "d": milliseconds = value * 86_400_000
            default: throw ParseError(input: text)
            }
            guard milliseconds < 1e15 else { throw ParseError(input: text) }
            total += .milliseconds(Int64(milliseconds.rounded()))
            sawComponent = true
        }
        guard sawComponent else { throw ParseError(input: text) }
        return total
    }

    /// Formats a duration the way `parse` reads it, in the largest exact units (`90s` → `1m30s`).
    public static func format(_ duration: Duration) -> String {
        var ms = duration.milliseconds
        if ms == 0 { return "0s" }
        var out = ms < 0 ? "-" : ""
        ms = abs(ms)
        let units: [(Int64, String)] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")]
        for (size, name) in units where ms >= size {
            out += "\(ms / size)\(name)"
            ms %= size
        }
        return out
    }
}

extension Duration {
    /// Whole milliseconds, truncated toward zero.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}

extension String {
    func trimmingSpaces() -> Substring {
        var slice = self[...]
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return slice
    }
}
