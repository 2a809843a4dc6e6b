import Foundation
import GantryCore
import GantryHTTP
import GantryTestSupport
import GantryWorkers
import Testing

/// The API over HTTPS with a certificate and key (Hummingbird's TLS), checked with a
/// self-signed certificate made by openssl for this test: trusted when its CA is given,
/// refused otherwise, and never served as plain HTTP.
@Suite struct APITLSTests {
    @Test func theAPISpeaksHTTPSWithTheGivenCertificate() async throws {
        let env = try await TestEnvironment.make()
        let certificate = env.logDirectory + "-api.crt", key = env.logDirectory + "-api.key"
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                             "-subj", "/CN=gantry-test", "-addext", "subjectAltName=IP:127.0.0.1",
                             "-keyout", key, "-out", certificate]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        #expect(openssl.terminationStatus == 0)
        let port = try LoopbackPort.free()
        let dispatcher = try env.dispatcher(["--listen", "127.0.0.1:\(port)", "--tls-cert", certificate, "--tls-key", key], name: "tls")
        let http = HTTPClient(name: "tls-test")
        func get(_ url: String, ca: String?) async -> Int? {
            var request = HTTPRequest(url: url, timeout: .seconds(5))
            request.caFile = ca
            return (try? await http.send(request))?.status
        }
        try await env.eventually("the HTTPS API") { await get("https://127.0.0.1:\(port)/healthz", ca: certificate) == 200 }
        // The system's trust store does not know this certificate, and plain HTTP is not spoken.
        #expect(await get("https://127.0.0.1:\(port)/healthz", ca: nil) == nil)
        #expect(await get("http://127.0.0.1:\(port)/healthz", ca: nil) != 200)
        // The CLI trusts it through GANTRY_CA_FILE.
        let harness = APIHarness(env: env, port: port)
        let token = try await harness.token("auditor", [.auditor])
        let environment = ProcessInfo.processInfo.environment.merging(
            ["GANTRY_URL": "https://127.0.0.1:\(port)", "GANTRY_TOKEN": token, "GANTRY_CA_FILE": certificate]
        ) { $1 }
        let result = try await Command.run(env.binary, ["runs"], environment: environment, stem: env.logDirectory + "-runs")
        let text = result.out + result.err
        #expect(result.status == 0, "\(text)")
        // Half a pair is refused at start, in one line.
        let half = try env.dispatcher(["--listen", "127.0.0.1:\(try LoopbackPort.free())", "--tls-cert", certificate], name: "half")
        try await env.eventually("the dispatcher with half a pair to exit") { !half.isRunning }
        #expect(half.log.contains("--tls-cert and --tls-key go together"))
        _ = dispatcher
    }
}
