/// Matches repository paths against `when.paths` globs, as CI systems do:
/// `*` is any run of characters but `/`, `**` any run including `/` (and, as a
/// whole segment, `**/` is zero or more directories), `?` one character but `/`.
///
/// The pattern runs as a set of positions over the path (a Thompson NFA), so a match costs at
/// most pattern length × path length steps whatever the pattern: a submitter's `a*a*a*…b`
/// against a long path cannot hold the dispatcher (the backtracking matcher this replaced was
/// exponential in the number of stars).
public enum PathGlob {
    public static func matches(_ pattern: String, _ path: String) -> Bool {
        let tokens = tokenize(Array(pattern.utf8))
        var current = [Bool](repeating: false, count: tokens.count + 1)
        var next = current
        current[0] = true
        close(&current, tokens, atSegmentStart: true)
        for byte in path.utf8 {
            for index in next.indices { next[index] = false }
            var any = false
            for (index, token) in tokens.enumerated() where current[index] {
                switch token {
                case .literal(let expected):
                    if byte == expected { next[index + 1] = true; any = true }
                case .one:
                    if byte != slash { next[index + 1] = true; any = true }
                case .star:
                    if byte != slash { next[index] = true; any = true }
                case .globstar:
                    next[index] = true
                    any = true
                case .directories:
                    // Inside the directories: stay; a '/' may also end them.
                    next[index] = true
                    if byte == slash { next[index + 1] = true }
                    any = true
                }
            }
            guard any else { return false }
            swap(&current, &next)
            close(&current, tokens, atSegmentStart: byte == slash)
        }
        return current[tokens.count]
    }

    /// True when any pattern matches any of the paths.
    public static func anyMatch(_ patterns: [String], _ paths: [String]) -> Bool {
        patterns.contains { pattern in paths.contains { matches(pattern, $0) } }
    }

    private static let slash = UInt8(ascii: "/")

    private enum Token: Equatable {
        case literal(UInt8)
        /// `?`
        case one
        /// `*`: within one path segment.
        case star
        /// `**` not followed by `/`: anything, across segments.
        case globstar
        /// `**/` as a whole segment: zero or more directories.
        case directories
    }

    private static func tokenize(_ pattern: [UInt8]) -> [Token] {
        let star = UInt8(ascii: "*"), question = UInt8(ascii: "?")
        var tokens: [Token] = []
        var index = 0
        while index < pattern.count {
            let byte = pattern[index]
            if byte == star, index + 1 < pattern.count, pattern[index + 1] == star {
                let atSegmentStart = index == 0 || pattern[index - 1] == slash
                if atSegmentStart, index + 2 < pattern.count, pattern[index + 2] == slash {
                    tokens.append(.directories)
                    index += 3
                } else {
                    tokens.append(.globstar)
                    index += 2
                    // Further stars add nothing.
                    while index < pattern.count, pattern[index] == star { index += 1 }
                }
                continue
            }
            tokens.append(byte == star ? .star : byte == question ? .one : .literal(byte))
            index += 1
        }
        return tokens
    }

    /// Adds the positions reachable without reading a byte: past any star, which may match
    /// nothing; past `**/` only where a segment starts (zero directories, not part of a name).
    private static func close(_ set: inout [Bool], _ tokens: [Token], atSegmentStart: Bool) {
        for (index, token) in tokens.enumerated() where set[index] {
            switch token {
            case .star, .globstar: set[index + 1] = true
            case .directories: if atSegmentStart { set[index + 1] = true }
            case .literal, .one: break
            }
        }
    }
}
