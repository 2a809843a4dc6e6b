import Foundation

/// Reads a file a flag names the way a shell user expects: a regular file, a named pipe,
/// process substitution (`<(…)`, a /dev/fd path) or `-` for standard input, read to the
/// end (FileManager.contents refused everything but regular files). At most `limit` bytes.
enum InputFile {
    static func read(_ path: String, flag: String, limit: Int = 1 << 20) throws -> String {
        let handle: FileHandle
        if path == "-" {
            handle = FileHandle.standardInput
        } else {
            guard let opened = FileHandle(forReadingAtPath: path) else {
                let reason = FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file"
                throw UsageError("\(flag) \(path): cannot read it (\(reason))")
            }
            handle = opened
        }
        defer { if path != "-" { try? handle.close() } }
        var data = Data()
        while let chunk = try handle.read(upToCount: 64 << 10), !chunk.isEmpty {
            data.append(chunk)
            if data.count > limit { throw UsageError("\(flag) \(path): larger than \(limit) bytes") }
        }
        guard let text = String(data: data, encoding: .utf8) else { throw UsageError("\(flag) \(path): not UTF-8 text") }
        return text
    }
}
