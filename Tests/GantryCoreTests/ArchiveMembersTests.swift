import GantryCore
import Testing

/// The listings below are what GNU tar 1.34 prints for archives written with Python's tarfile.
@Suite struct ArchiveMembersTests {
    private func problem(_ members: [(name: String, line: String)]) -> String? {
        ArchiveMembers.problem(names: members.map { Substring($0.name) }, verbose: members.map { Substring($0.line) })
    }

    private func file(_ name: String) -> (name: String, line: String) {
        (name, "-rw-r--r-- 0/0               6 1970-01-01 00:00 \(name)")
    }

    private func link(_ name: String, _ target: String) -> (name: String, line: String) {
        (name, "lrwxrwxrwx 0/0               0 1970-01-01 00:00 \(name) -> \(target)")
    }

    private func hardLink(_ name: String, _ target: String) -> (name: String, line: String) {
        (name, "hrw-r--r-- 0/0               0 1970-01-01 00:00 \(name) link to \(target)")
    }

    @Test func filesDirectoriesAndDownwardLinksAreRestored() {
        #expect(problem([]) == nil)
        #expect(problem([
            file("data/a.txt"), ("data/", "drwxr-xr-x 0/0               0 1970-01-01 00:00 data/"),
            link("current", "releases/v2"), link("data/self", "."), link("data/b", "a.txt"),
            hardLink("data/c", "data/a.txt"), file("name with -> arrow"), file("dots..are.fine"),
        ]) == nil)
    }

    @Test(arguments: ["/etc/passwd", "/", "..", "../sibling", "sub/../../x", "a/.."])
    func aLinkThatCouldLeaveIsRefused(target: String) {
        let found = problem([file("ok"), link("out", target)])
        #expect(found == "the backup's link 'out' points to '\(target)'; links must point down into the restored tree (relative, no '..')")
    }

    @Test func aLinkNamedWithAnArrowIsReadByItsWholeName() {
        // Name "x -> y", target "/etc": the line reads "x -> y -> /etc".
        #expect(problem([link("x -> y", "/etc")])?.contains("points to '/etc'") == true)
        #expect(problem([link("x -> y", "z")]) == nil)
        // A target holding an arrow is read whole: "a b -> /c" is a directory "a b -> " and its "c".
        #expect(problem([link("l2", "a b -> /c")]) == nil)
        #expect(problem([link("l2", "a b -> /../c")])?.contains("points to 'a b -> /../c'") == true)
    }

    @Test(arguments: ["/etc/shadow", "../x", "a/../../x"])
    func aHardLinkOutsideIsRefused(target: String) {
        #expect(problem([hardLink("h", target)]) == "the backup's hard link 'h' names '\(target)', outside with.to_path")
    }

    @Test(arguments: ["/abs", "../up", "a/../../b", ".."])
    func aNameOutsideIsRefused(name: String) {
        #expect(problem([file(name)]) == "the backup holds '\(name)', which would be written outside with.to_path")
    }

    @Test(arguments: ["p", "c", "b"])
    func devicesAndFIFOsAreRefused(type: String) {
        let found = problem([("dev", "\(type)rw-r--r-- 0/0             1,3 1970-01-01 00:00 dev")])
        #expect(found == "the backup holds 'dev' of type '\(type)' (a device or FIFO); only files, directories and links are restored")
    }

    @Test func listingsThatDisagreeAreRefused() {
        #expect(ArchiveMembers.problem(names: ["a", "b"], verbose: ["-rw-r--r-- 0/0 0 1970-01-01 00:00 a"])?.hasPrefix("tar listed 2 names but 1 members") == true)
        #expect(problem([("a", "lrwxrwxrwx 0/0 0 1970-01-01 00:00 b -> c")]) == "cannot read the link target of 'a' from tar's listing")
    }
}
