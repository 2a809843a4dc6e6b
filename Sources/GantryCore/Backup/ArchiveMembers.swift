/// Decides whether a tar archive may be extracted into a directory, from GNU tar's own
/// listings of it (`tar -tzf` and `tar -tvzf --numeric-owner`, member for member), so
/// that what is checked is what tar will do.
///
/// An archive is refused when any member would reach outside the directory:
/// - a name that is absolute or has a `..` component;
/// - a symbolic link whose target is absolute or has a `..` component. Links that only
///   point down stay inside however they chain (each resolves below its own directory,
///   which is inside), so no resolution on disk is needed;
/// - a hard link to a name that is absolute or has a `..` component;
/// - a device, a FIFO or any type other than file, directory and link.
public enum ArchiveMembers {
    /// The first problem, as one line naming the member, or nil when the archive may be extracted.
    public static func problem(names: [Substring], verbose: [Substring]) -> String? {
        guard names.count == verbose.count else {
            return "tar listed \(names.count) names but \(verbose.count) members; the archive is not restored"
        }
        for (name, line) in zip(names, verbose) {
            let shown = "'\(name.prefix(200))'"
            if leavesTree(name) { return "the backup holds \(shown), which would be written outside with.to_path" }
            switch line.first {
            case "-", "d":
                continue
            case "l":
                guard let target = suffix(of: line, after: " \(name) -> ") else {
                    return "cannot read the link target of \(shown) from tar's listing"
                }
                if leavesTree(target) {
                    return "the backup's link \(shown) points to '\(target.prefix(200))'; links must point down into the restored tree (relative, no '..')"
                }
            case "h":
                guard let target = suffix(of: line, after: " \(name) link to ") else {
                    return "cannot read the link target of \(shown) from tar's listing"
                }
                if leavesTree(target) { return "the backup's hard link \(shown) names '\(target.prefix(200))', outside with.to_path" }
            default:
                return "the backup holds \(shown) of type '\(line.first.map(String.init) ?? "?")' (a device or FIFO); only files, directories and links are restored"
            }
        }
        return nil
    }

    /// True when a path is absolute or climbs with `..`.
    static func leavesTree(_ path: Substring) -> Bool {
        path.hasPrefix("/") || path.split(separator: "/", omittingEmptySubsequences: false).contains("..")
    }

    private static func suffix(of line: Substring, after marker: String) -> Substring? {
        line.firstRange(of: marker).map { line[$0.upperBound...] }
    }
}
