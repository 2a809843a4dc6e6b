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
        Compiled(pattern).matches(path)
    }

    /// A pattern read once, to match many paths. Only the live positions are stepped per byte:
    /// at most one per star and one after it, so a byte costs a handful of steps, not the
    /// pattern's length.
    public struct Compiled: Sendable {
        fileprivate let tokens: [Token]

        public init(_ pattern: String) {
            tokens = PathGlob.tokenize(Array(pattern.utf8))
        }

        public func matches(_ path: String) -> Bool {
            var unlimited = Int.max
            return matches(path, budget: &unlimited) ?? true
        }

        /// Matches, spending one unit of `budget` per live position per byte; nil when the
        /// budget ran out first (the caller decides what an unknown answer means).
        public func matches(_ path: String, budget: inout Int) -> Bool? {
            var live = [Bool](repeating: false, count: tokens.count + 1)
            var current: [Int] = []
            var next: [Int] = []
            func add(_ position: Int, to list: inout [Int], atSegmentStart: Bool) {
                var position = position
                while !live[position] {
                    live[position] = true
                    list.append(position)
                    guard position < tokens.count else { return }
                    // Past a star, which may match nothing; past `**/` only where a segment starts.
                    switch tokens[position] {
                    case .star, .globstar: position += 1
                    case .directories where atSegmentStart: position += 1
                    default: return
                    }
                }
            }
            add(0, to: &current, atSegmentStart: true)
            for byte in path.utf8 {
                budget -= current.count
                guard budget >= 0 else { return nil }
                for position in current { live[position] = false }
                next.removeAll(keepingCapacity: true)
                let segmentStart = byte == slash
                for position in current where position < tokens.count {
                    switch tokens[position] {
                    case .literal(let expected):
                        if byte == expected { add(position + 1, to: &next, atSegmentStart: segmentStart) }
                    case .one:
                        if byte != slash { add(position + 1, to: &next, atSegmentStart: segmentStart) }
                    case .star:
                        if byte != slash { add(position, to: &next, atSegmentStart: segmentStart) }
                    case .globstar:
                        add(position, to: &next, atSegmentStart: segmentStart)
                    case .directories:
                        // Inside the directories: stay; a '/' may also end them.
                        add(position, to: &next, atSegmentStart: segmentStart)
                        if byte == slash { add(position + 1, to: &next, atSegmentStart: true) }
                    }
                }
                guard !next.isEmpty else { return false }
                swap(&current, &next)
            }
            return current.contains(tokens.count)
        }
    }

    /// True when any pattern matches any of the paths.
    public static func anyMatch(_ patterns: [String], _ paths: [String]) -> Bool {
        patterns.contains { pattern in
            let compiled = Compiled(pattern)
            return paths.contains(where: compiled.matches)
        }
    }

    fileprivate static let slash = UInt8(ascii: "/")

    fileprivate enum Token: Equatable, Sendable {
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

    fileprivate static func tokenize(_ pattern: [UInt8]) -> [Token] {
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
}
