import Foundation
import GantryCore
import GantryPostgres
import GantryRedis
import GantryTestSupport
import Testing

/// Invariant 9: secrets never leave the worker. A step uses two secrets (one from
/// the environment, one multi-line from a secrets directory); afterwards everything
/// Gantry wrote — Postgres, Redis, the processes' logs — is searched for them.
@Suite struct SecretsTests {
    @Test func resolvedSecretsAreRedactedEverywhereGantryWrites() async throws {
        let env = try await TestEnvironment.make()
        let (api, dispatcher) = try await APIHarness.start(env)
        let token = "tok-\(UUID().uuidString)"
        let password = "first-line-\(UUID().uuidString.prefix(8))\nsecond-line-\(UUID().uuidString.prefix(8))"
        let directory = env.logDirectory + "-secrets"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try (password + "\n").write(toFile: directory + "/DB_PASSWORD", atomically: true, encoding: .utf8)
        let worker = try env.worker("w1", extra: ["--secrets-dir", directory], environment: ["GANTRY_SECRET_API_TOKEN": token])
        let ci = try await api.token("ci", [.submitter], env: ["staging"])
        let pipeline = """
            pipeline: secretive
            environment: staging
            steps:
              - id: use
                kind: noop
                with:
                  log: "calling with ${{ secrets.API_TOKEN }} and ${{ secrets.DB_PASSWORD }}"
                  output: { header: "Bearer ${{ secrets.API_TOKEN }}", both: "${{ secrets.DB_PASSWORD }}", plain: "ok" }
              - { id: missing, kind: noop, needs: [use], retry: { max_attempts: 1 }, with: { log: "${{ secrets.NOT_THERE }}" } }
            """
        let id = try await api.submit(pipeline, token: ci).json.id
        let run = try await api.wait(id, token: ci)
        #expect(run.status == "failed")
        let use = try #require(run.steps.first { $0.id == "use" })
        #expect(use.attempts.last?.outputs == ["header": .string("Bearer ***"), "both": .string("***"), "plain": .string("ok")])
        let log = try await api.cli(["logs", id, "--step", "use"], token: ci)
        #expect(log.out == "calling with *** and ***\n")
        let missing = try #require(run.steps.first { $0.id == "missing" })
        #expect(missing.attempts.last?.error?.hasPrefix("secret NOT_THERE is not available on worker w1: set GANTRY_SECRET_NOT_THERE") == true)

        // Everything Gantry wrote, searched for every piece of both secrets.
        let needles = [token, password] + password.split(separator: "\n").map(String.init)
        let db = try env.db()
        var written = ""
        for table in ["runs", "steps", "attempts", "approvals", "actions"] {
            written += try await db.run("SELECT coalesce(string_agg(t::text, '\n'), '') AS all FROM \(table) t")[0].string("all") ?? ""
        }
        let redis = env.redis()
        var cursor = "0"
        repeat {
            let reply = try await redis.command(["SCAN", cursor, "MATCH", "{\(env.namespace)}:*", "COUNT", "1000"])
            cursor = reply.array?[0].string ?? "0"
            for key in reply.array?[1].array?.compactMap(\.string) ?? [] {
                let type = try await redis.command(["TYPE", key]).string ?? ""
                let dump: RedisValue = switch type {
                case "stream": try await redis.command(["XRANGE", key, "-", "+"])
                case "hash": try await redis.command(["HGETALL", key])
                case "zset": try await redis.command(["ZRANGE", key, "0", "-1"])
                case "string": try await redis.command(["GET", key])
                default: .null
                }
                written += "\(key) \(dump)\n"
            }
        } while cursor != "0"
        written += worker.log + dispatcher.log
        #expect(written.contains("Bearer ***"), "the search did not see the redacted output")
        for needle in needles {
            #expect(!written.contains(needle), "a secret value was written somewhere")
        }
        _ = (dispatcher, worker)
    }
}
