import Crypto
import Foundation
import GantryCore
import GantryHTTP
import GantryTestSupport
import GantryWorkers
import Testing

/// The S3 client and the backup kind against a real S3-compatible server (moto,
/// started by `make test` with request authentication on).
@Suite struct BackupTests {
    struct S3Settings {
        var endpoint, bucket, accessKeyID, secret: String

        static func fromEnvironment() throws -> S3Settings {
            let env = ProcessInfo.processInfo.environment
            guard let endpoint = env["GANTRY_TEST_S3_ENDPOINT"], let bucket = env["GANTRY_TEST_S3_BUCKET"],
                  let id = env["GANTRY_TEST_S3_ACCESS_KEY_ID"], let secret = env["GANTRY_TEST_S3_SECRET_ACCESS_KEY"] else {
                throw Failure("the S3 tests need the S3 server `make test` starts (GANTRY_TEST_S3_*); run make test")
            }
            return S3Settings(endpoint: endpoint, bucket: bucket, accessKeyID: id, secret: secret)
        }

        func client(secret: String? = nil) -> S3Client {
            S3Client(S3Configuration(
                endpoint: endpoint, region: "us-east-1",
                credentials: AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secret ?? self.secret), pathStyle: true
            ))
        }

        /// What a worker needs to reach this server.
        var workerEnvironment: [String: String] {
            ["AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1"]
        }
    }

    @Test func everyRequestIsSignedAndAWrongSecretIsRefused() async throws {
        let s3 = try S3Settings.fromEnvironment()
        let client = s3.client()
        let prefix = "client-\(UUID().uuidString.prefix(8))/"
        let key = S3Location(bucket: s3.bucket, key: prefix + "dir with space/ünïcode+plus.txt")
        try await client.putObject(key, body: Array("hello".utf8), headers: [("x-amz-tagging", "gantry-retention-days=7&team=platform")])
        let head = try await client.head(key)
        #expect(head?.size == 5, "\(String(describing: head))")
        #expect(String(decoding: try await client.get(key), as: UTF8.self) == "hello")
        #expect(try await client.tags(key) == ["gantry-retention-days": "7", "team": "platform"])
        #expect(try await client.list(bucket: s3.bucket, prefix: prefix).map(\.key) == [key.key])
        #expect(try await client.head(S3Location(bucket: s3.bucket, key: prefix + "missing")) == nil)
        try await client.putLifecycle(bucket: s3.bucket, xml: S3Client.retentionLifecycle(prefix: "backups/", days: [30, 90]))

        let wrong = "wrong" + s3.secret.dropFirst(5)
        do {
            _ = try await s3.client(secret: wrong).list(bucket: s3.bucket, prefix: prefix)
            Issue.record("a request signed with the wrong secret was accepted")
        } catch {
            #expect(error.kind == .service(status: 403, code: "SignatureDoesNotMatch"), "\(error)")
            #expect(!error.description.contains(wrong) && !error.description.contains("\n"))
        }
        try await client.delete(key)
        #expect(try await client.head(key) == nil)
    }

    @Test func backupsStreamInVerifiedPartsAndRestoreOnlyWhatMatchesItsChecksum() async throws {
        let s3 = try S3Settings.fromEnvironment()
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("backer", kind: "backup", concurrency: 4, lease: "10s", environment: s3.workerEnvironment)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let source = env.logDirectory + "-source"
        try FileManager.default.createDirectory(atPath: source + "/uploads/2026", withIntermediateDirectories: true)
        try "invoice 1\n".write(toFile: source + "/uploads/2026/a.txt", atomically: true, encoding: .utf8)
        try "config: yes\n".write(toFile: source + "/app.yaml", atomically: true, encoding: .utf8)
        let restored = env.logDirectory + "-restored"
        let prefix = "s3://\(s3.bucket)/runs/\(UUID().uuidString.prefix(8))/"
        let pipeline = """
            pipeline: backup
            environment: staging
            steps:
              - id: files
                kind: backup
                with: { source: { paths: ["\(source)"] }, to: "\(prefix)", retention_days: 30 }
              - id: big
                kind: backup
                timeout: 5m
                with: { source: { command: "head -c 104857600 /dev/urandom" }, to: "\(prefix)", name: big.bin, retention_days: 90 }
              - id: restore
                kind: backup
                needs: [files]
                with: { action: restore, from: "${{ steps.files.outputs.url }}", to_path: "\(restored)" }
              - id: failing-source
                kind: backup
                needs: [restore, big]
                retry: { max_attempts: 1 }
                with: { source: { command: "echo partial; exit 3" }, to: "\(prefix)", name: failed.out }
            """
        let id = try await api.submit(pipeline, token: token).json.id
        let run = try await api.wait(id, token: token, timeout: .seconds(120))
        let steps = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0) })
        #expect(steps["files"]?.status == "succeeded", "\(steps["files"]?.lastError ?? "")")
        #expect(steps["restore"]?.status == "succeeded", "\(steps["restore"]?.lastError ?? "")")
        #expect(try String(contentsOfFile: restored + source + "/uploads/2026/a.txt", encoding: .utf8) == "invoice 1\n")

        // 100 MiB in 8 MiB parts: 13 of them; the checksum object matches what S3 holds.
        let big = try #require(steps["big"]?.attempts.last?.outputs)
        #expect(steps["big"]?.status == "succeeded", "\(steps["big"]?.lastError ?? "")")
        #expect(big["size"] == .number(104_857_600) && big["parts"] == .number(13))
        let client = s3.client()
        let bigLocation = try #require(S3Location(big["url"]?.stringValue ?? ""))
        #expect(try await client.tags(bigLocation)["gantry-retention-days"] == "90")
        // Downloaded whole (streamed to a file and hashed on the way): S3 holds what the step hashed.
        let downloaded = try await BackupTransfer(s3: client).download(bigLocation, to: env.logDirectory + "-big.bin")
        #expect(downloaded.size == 104_857_600 && downloaded.sha256 == big["sha256"]?.stringValue)
        try? FileManager.default.removeItem(atPath: env.logDirectory + "-big.bin")
        let sidecar = String(decoding: try await client.get(S3Location(bucket: bigLocation.bucket, key: bigLocation.key + ".sha256")), as: UTF8.self)
        #expect(sidecar == "\(big["sha256"]?.stringValue ?? "")  big.bin\n")

        // A source that fails keeps nothing, not even an incomplete object.
        #expect(steps["failing-source"]?.attempts.first?.error == "the backup source exited with code 3; nothing was kept")
        #expect(try await client.head(S3Location(bucket: s3.bucket, key: bigLocation.key.replacingOccurrences(of: "big.bin", with: "failed.out"))) == nil)

        // A corrupted object: restore refuses it and extracts nothing.
        let files = try #require(S3Location(steps["files"]?.attempts.last?.outputs["url"]?.stringValue ?? ""))
        var corrupt = try await client.get(files)
        corrupt[corrupt.count / 2] ^= 0xFF
        try await client.putObject(files, body: corrupt)
        let again = env.logDirectory + "-restored-again"
        let restoreOnly = """
            pipeline: restore
            environment: staging
            steps:
              - id: restore
                kind: backup
                retry: { max_attempts: 1 }
                with: { action: restore, from: "\(files)", to_path: "\(again)" }
            """
        let second = try await api.submit(restoreOnly, token: token).json.id
        let refused = try await api.wait(second, token: token)
        #expect(refused.steps.first?.attempts.first?.error?.hasPrefix("\(files) is corrupt: its SHA-256 is ") == true,
                "\(refused.steps.first?.attempts.first?.error ?? "")")
        #expect(!FileManager.default.fileExists(atPath: again + source), "nothing was extracted")

        // The CLI lists them; a restore by hand checks the checksum the same way.
        var cliEnvironment = ProcessInfo.processInfo.environment
        cliEnvironment.merge(s3.workerEnvironment) { $1 }
        let list = try await runCLI(env.binary, ["backup", "list", prefix], environment: cliEnvironment, stem: env.logDirectory + "-list")
        #expect(list.contains("big.bin  104857600 bytes") && !list.contains(".sha256  "), "\(list)")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    /// A backup someone tampered with (or wrote to the bucket themselves) cannot write outside
    /// the directory it is restored into: not by a `..` name, not through a symlink it carries.
    @Test func aRestoreNeverWritesOutsideItsDirectory() async throws {
        let s3 = try S3Settings.fromEnvironment()
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let worker = try env.worker("restorer", kind: "backup", concurrency: 2, lease: "10s", environment: s3.workerEnvironment)
        let token = try await api.token("ci", [.submitter], env: ["staging"])
        let client = s3.client()
        let outside = env.logDirectory + "-outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        // Two archives written with Python's tarfile: a '..' member, and a symlink to the outside
        // directory followed by a member written through it.
        let script = """
            import io, sys, tarfile
            def add(t, name, data=b"owned\\n", link=None):
                info = tarfile.TarInfo(name)
                if link is not None:
                    info.type, info.linkname = tarfile.SYMTYPE, link
                    t.addfile(info)
                else:
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
            with tarfile.open(sys.argv[1], "w:gz") as t:
                add(t, "ok.txt")
                add(t, "../escape.txt")
            with tarfile.open(sys.argv[2], "w:gz") as t:
                add(t, "out", link=sys.argv[3])
                add(t, "out/through-link.txt")
            """
        let dotdot = env.logDirectory + "-dotdot.tgz", symlink = env.logDirectory + "-symlink.tgz"
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        python.arguments = ["-c", script, dotdot, symlink, outside]
        try python.run()
        python.waitUntilExit()
        #expect(python.terminationStatus == 0)
        let prefix = "restore-\(UUID().uuidString.prefix(8))/"
        for (file, name) in [(dotdot, "dotdot.tgz"), (symlink, "symlink.tgz")] {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
            let location = S3Location(bucket: s3.bucket, key: prefix + name)
            try await client.putObject(location, body: bytes)
            let sha = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            try await client.putObject(S3Location(bucket: s3.bucket, key: location.key + ".sha256"), body: Array("\(sha)  \(name)\n".utf8))
        }
        let into = env.logDirectory + "-into"
        func restore(_ name: String) async throws -> RunView {
            let pipeline = """
                pipeline: restore
                environment: staging
                steps:
                  - id: restore
                    kind: backup
                    retry: { max_attempts: 1 }
                    with: { action: restore, from: "s3://\(s3.bucket)/\(prefix)\(name)", to_path: "\(into)/\(name)/inner" }
                """
            let run = try await api.submit(pipeline, token: token).json.id
            return try await api.wait(run, token: token)
        }
        let refused = try await restore("dotdot.tgz")
        #expect(refused.status == "failed")
        #expect(refused.steps.first?.attempts.first?.error?.contains("the backup holds '../escape.txt', which would be written outside with.to_path") == true,
                "\(refused.steps.first?.attempts.first?.error ?? "")")
        #expect(!FileManager.default.fileExists(atPath: into + "/dotdot.tgz/escape.txt"))
        #expect(!FileManager.default.fileExists(atPath: into + "/dotdot.tgz/inner/ok.txt"), "nothing was extracted")
        let linked = try await restore("symlink.tgz")
        #expect(linked.status == "failed")
        #expect(linked.steps.first?.attempts.first?.error?.contains("the backup's link 'out' points to '\(outside)'; links must point down") == true,
                "\(linked.steps.first?.attempts.first?.error ?? "")")
        #expect(!FileManager.default.fileExists(atPath: outside + "/through-link.txt"), "a member was written through a symlink")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: into + "/symlink.tgz/inner/out")) == nil, "no outward link is left behind")
        _ = await worker.stop()
        _ = await dispatcher.stop()
    }

    private func runCLI(_ binary: String, _ arguments: [String], environment: [String: String], stem: String) async throws -> String {
        try await Command.run(binary, arguments, environment: environment, stem: stem).out
    }
}
