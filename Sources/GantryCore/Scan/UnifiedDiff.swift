/// The lines a change adds, read from `git diff --unified=0` output: what the
/// secret scan reads in diff mode (a secret removed by the change is not news;
/// one it adds is).
public enum UnifiedDiff {
    public struct AddedLine: Sendable, Equatable {
        public var path: String
        /// 1-based line number in the new file.
        public var line: Int
        public var text: String

        public init(path: String, line: Int, text: String) {
            self.path = path
            self.line = line
            self.text = text
        }
    }

    public static func addedLines(_ diff: String) -> [AddedLine] {
        var out: [AddedLine] = []
        var path: String?
        var next = 0
        for raw in diff.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            if raw.hasPrefix("+++ ") {
                let name = raw.dropFirst(4)
                // "+++ /dev/null" is a deleted file; "b/" is git's prefix for the new side.
                path = name == "/dev/null" ? nil : String(name.hasPrefix("b/") ? name.dropFirst(2) : name)
            } else if raw.hasPrefix("@@ ") {
                // @@ -a[,b] +c[,d] @@
                guard let plus = raw.split(separator: " ").first(where: { $0.hasPrefix("+") }) else { continue }
                next = Int(plus.dropFirst().split(separator: ",").first ?? "") ?? 0
            } else if raw.hasPrefix("+"), let path {
                out.append(AddedLine(path: path, line: next, text: String(raw.dropFirst())))
                next += 1
            } else if raw.hasPrefix(" ") {
                next += 1
            }
        }
        return out
    }
}
