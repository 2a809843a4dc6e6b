import Foundation
import GantryCore

/// A private directory for one attempt (mode 0700, under `$TMPDIR`), removed when
/// the attempt ends: the `$GANTRY_OUTPUT` file of a build, a scanner's report.
struct Scratch {
    let directory: String

    init(for job: Job) throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/gantry-\(job.stepID.prefix(32))-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw StepFailure("cannot create a scratch directory under \(base): \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
    }

    func path(_ name: String) -> String { directory + "/" + name }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
