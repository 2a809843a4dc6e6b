/// Matches repository paths against `when.paths` globs, as CI systems do:
/// `*` is any run of characters but `/`, `**` any run including `/` (and, as a
/// whole segment, zero or more directories), `?` one character but `/`.
public enum PathGlob {
    public static func matches(_ pattern: String, _ path: String) -> Bool {
        match(Array(pattern.utf8)[...], Array(path.utf8)[...])
    }

    /// True when any pattern matches any of the paths.
    public static func anyMatch(_ patterns: [String], _ paths: [String]) -> Bool {
        patterns.contains { pattern in paths.contains { matches(pattern, $0) } }
    }

    private static func match(_ pattern: ArraySlice<UInt8>, _ path: ArraySlice<UInt8>) -> Bool {
        let slash = UInt8(ascii: "/"), star = UInt8(ascii: "*"), question = UInt8(ascii: "?")
        guard let first = pattern.first else { return path.isEmpty }
        if first == star, pattern.dropFirst().first == star {
            var rest = pattern.dropFirst(2)
            // "**/" may also match no directory at all.
            if rest.first == slash {
                rest = rest.dropFirst()
                if match(rest, path) { return true }
            }
            var index = path.startIndex
            while true {
                if match(rest, path[index...]) { return true }
                if index == path.endIndex { return false }
                index = path.index(after: index)
            }
        }
        if first == star {
            var index = path.startIndex
            while true {
                if match(pattern.dropFirst(), path[index...]) { return true }
                if index == path.endIndex || path[index] == slash { return false }
                index = path.index(after: index)
            }
        }
        guard let head = path.first else { return false }
        if first == question {
            return head != slash && match(pattern.dropFirst(), path.dropFirst())
        }
        return first == head && match(pattern.dropFirst(), path.dropFirst())
    }
}
