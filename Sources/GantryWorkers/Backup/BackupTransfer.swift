import Crypto
import Foundation
import GantryCore
import GantryHTTP
import GantryProcess

/// Streams a backup to S3 and back: the uploader reads a command's stdout a part
/// at a time (a `tar -cz` of paths, `pg_dump`, `kubectl get all -o yaml`) and
/// sends each part as it fills, so memory holds one part and nothing touches the
/// disk; restore downloads to a private file, checks the SHA-256 and only then
/// extracts or pipes it.
///
/// Every backup object `KEY` has a checksum object `KEY.sha256` beside it, in
/// `sha256sum` format (`<hex>  <name>`), written after the upload was verified:
/// a backup without it is incomplete and restore refuses it.
public struct BackupTransfer: Sendable {
    public let s3: S3Client
    /// Multipart above this; also the part size. S3's minimum part is 5 MiB.
    public var partSize: Int

    public init(s3: S3Client, partSize: Int = 8 << 20) {
        self.s3 = s3
        self.partSize = max(5 << 20, partSize)
    }

    public struct Uploaded: Sendable, Equatable {
        public var location: S3Location
        public var size: Int64
        public var sha256: String
        public var parts: Int
    }

    /// What a backup is tagged with (and what the lifecycle rules select on).
    public static func tags(retentionDays: Int?, run: String, step: String) -> String {
        var tags = ["gantry-run=\(run)", "gantry-step=\(step)"]
        if let retentionDays { tags.insert("gantry-retention-days=\(retentionDays)", at: 0) }
        return tags.joined(separator: "&")
    }

    /// Uploads everything `source` writes to its stdout to `location`.
    /// - Parameters:
    ///   - source: the producing command; its stderr goes to `log`. A producer that
    ///     fails (non-zero exit) fails the backup and nothing is kept.
    ///   - beforeWrite: called before each change to the bucket (the lease check).
    func upload(
        from source: ChildProcess, to location: S3Location, headers: [(name: String, value: String)],
        log: StepLog, beforeWrite: @Sendable () async throws -> Void
    ) async throws -> Uploaded {
        var producer = source
        let pipe = try StreamPipe()
        producer.stdoutPipe = pipe
        let process = producer
        return try await withThrowingTaskGroup(of: ChildProcess.Termination?.self) { group in
            group.addTask {
                do {
                    let output = log.processOutput()
                    return try await process.run { output.write($0) }
                } catch {
                    // It never started: end the stream so the reader stops waiting.
                    pipe.closeWriteEnd()
                    throw StepFailure("the backup source \(error)", retryable: false)
                }
            }
            var digest = SHA256()
            var size: Int64 = 0
            var uploadID: String?
            var parts: [(number: Int, etag: String)] = []
            do {
                var part = await pipe.read(upTo: partSize)
                var next: [UInt8] = []
                while true {
                    digest.update(data: part)
                    size += Int64(part.count)
                    if part.count == partSize { next = await pipe.read(upTo: partSize) }
                    let last = part.count < partSize || next.isEmpty
                    if uploadID == nil, last {
                        // Small enough for one PUT, after the producer proved it succeeded.
                        try Self.check(try await group.next() ?? nil, what: "the backup source")
                        guard size > 0 else { throw StepFailure("the backup source wrote nothing; nothing was kept", retryable: false) }
                        try await beforeWrite()
                        try await s3.putObject(location, body: part, headers: headers)
                        parts = [(1, "")]
                        break
                    }
                    if uploadID == nil {
                        try await beforeWrite()
                        uploadID = try await s3.createMultipartUpload(location, headers: headers)
                    }
                    let number = parts.count + 1
                    parts.append((number, try await s3.uploadPart(location, uploadID: uploadID!, number: number, body: part)))
                    log.write("uploaded part \(number) (\(size / (1 << 20)) MiB so far)")
                    if last {
                        try Self.check(try await group.next() ?? nil, what: "the backup source")
                        try await beforeWrite()
                        try await s3.completeMultipartUpload(location, uploadID: uploadID!, parts: parts)
                        break
                    }
                    part = next
                    next = []
                }
            } catch {
                group.cancelAll()
                if let uploadID { try? await s3.abortMultipartUpload(location, uploadID: uploadID) }
                throw error
            }
            let sha256 = Hex.encode(digest.finalize())
            // Verify before declaring success: the object is there, whole.
            guard let object = try await s3.head(location), object.size == size else {
                throw StepFailure("the upload to \(location) could not be verified: S3 does not hold \(size) bytes there")
            }
            let name = (location.key as NSString).lastPathComponent
            try await beforeWrite()
            try await s3.putObject(
                S3Location(bucket: location.bucket, key: location.key + ".sha256"),
                body: Array("\(sha256)  \(name)\n".utf8), headers: [("Content-Type", "text/plain")] + headers.filter { $0.name == "x-amz-tagging" }
            )
            return Uploaded(location: location, size: size, sha256: sha256, parts: parts.count)
        }
    }

    /// Downloads `location` into `file`, checking it against its `.sha256` object;
    /// throws (and removes the file) when they differ.
    public func download(_ location: S3Location, to file: String) async throws -> (size: Int64, sha256: String) {
        let checksumText = String(decoding: try await s3.get(S3Location(bucket: location.bucket, key: location.key + ".sha256")), as: UTF8.self)
        guard let expected = checksumText.split(separator: " ").first.map(String.init), expected.count == 64 else {
            throw StepFailure("\(location).sha256 is not a SHA-256 checksum; the backup is incomplete or not Gantry's")
        }
        guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: file) else {
            throw StepFailure("cannot write \(file)")
        }
        let sink = DownloadSink(handle: handle)
        do {
            try await s3.download(location) { bytes in sink.write(bytes) }
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: file)
            throw error
        }
        let (size, actual) = sink.result
        guard actual == expected else {
            try? FileManager.default.removeItem(atPath: file)
            throw StepFailure("\(location) is corrupt: its SHA-256 is \(actual), the backup recorded \(expected); nothing was restored", retryable: false)
        }
        return (size, actual)
    }

    /// Where a restore puts the backup.
    public enum Destination: Sendable {
        /// A directory the tar.gz is extracted into (created when missing).
        case path(String)
        /// A shell command fed the backup on stdin (`pg_restore -d app`); it sees `environment` only.
        case command(String)
    }

    /// Downloads `location`, checks it against its `.sha256`, and only then extracts it
    /// or feeds it to a command. `scratchDirectory` holds the download meanwhile.
    public func restore(
        _ location: S3Location, to destination: Destination, scratchDirectory: String, environment: [String: String],
        onLine: @escaping @Sendable (String) -> Void
    ) async throws -> (size: Int64, sha256: String) {
        let file = scratchDirectory + "/restore-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let downloaded = try await download(location, to: file)
        onLine("downloaded \(location): \(downloaded.size) bytes, sha256 \(downloaded.sha256) matches the backup's")
        let process: ChildProcess
        switch destination {
        case .path(let directory):
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            guard let tar = ChildProcess.locate("tar", path: environment["PATH"]) else {
                throw StepFailure("restore: tar is not installed here", retryable: false)
            }
            try await Self.checkMembers(of: file, tar: tar, environment: environment)
            // Owners and modes are not taken from the archive (a restore runs as the worker, often root).
            process = ChildProcess(
                executable: tar,
                arguments: ["--no-same-owner", "--no-same-permissions", "--no-overwrite-dir", "-xzf", file, "-C", directory],
                environment: environment
            )
        case .command(let script):
            let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            guard let shell = ChildProcess.locate("bash", path: path) ?? ChildProcess.locate("sh", path: path) else {
                throw StepFailure("restore: no shell on PATH", retryable: false)
            }
            process = ChildProcess(executable: shell, arguments: ["-e", "-c", script], environment: environment, stdinFile: file)
        }
        let what: String
        switch destination {
        case .path: what = "tar"
        case .command: what = "the restore command"
        }
        try Self.check(try await process.run(onLine: onLine), what: what)
        return downloaded
    }

    /// Refuses an archive with a member that would land or point outside the directory it
    /// is restored into (ArchiveMembers has the rules), before anything is extracted.
    static func checkMembers(of file: String, tar: String, environment: [String: String]) async throws {
        func listing(_ arguments: [String]) async throws -> [Substring] {
            let output = file + ".list"
            defer { try? FileManager.default.removeItem(atPath: output) }
            let list = ChildProcess(executable: tar, arguments: arguments + [file], environment: environment, stdoutFile: output)
            try check(try await list.run(onLine: { _ in }), what: "tar -t")
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            return text.split(separator: "\n")
        }
        let names = try await listing(["-tzf"])
        let verbose = try await listing(["--numeric-owner", "-tvzf"])
        if let problem = ArchiveMembers.problem(names: names, verbose: verbose) {
            throw StepFailure(problem + "; nothing was restored", retryable: false)
        }
    }

    static func check(_ termination: ChildProcess.Termination?, what: String) throws {
        guard let termination else { return }
        if termination.stopped { throw CancellationError() }
        guard termination.ending == .exited(0) else {
            throw StepFailure("\(what) \(termination.ending); nothing was kept", exitCode: termination.ending.code)
        }
    }
}

/// Writes a download to its file and hashes it on the way.
private final class DownloadSink: @unchecked Sendable {
    private let lock = NSLock()
    private let handle: FileHandle
    private var digest = SHA256()
    private var size: Int64 = 0
    private var failed = false

    init(handle: FileHandle) {
        self.handle = handle
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        lock.withLock {
            digest.update(bufferPointer: bytes)
            size += Int64(bytes.count)
            do { try handle.write(contentsOf: Data(bytes)) } catch { failed = true }
            return !failed
        }
    }

    var result: (Int64, String) {
        lock.withLock { (size, Hex.encode(digest.finalize())) }
    }
}
