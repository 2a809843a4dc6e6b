import Foundation
import GantryCore
import Testing

@Suite struct SecretRulesTests {
    // Built at run time so that this file does not itself hold anything that looks like a credential.
    static let awsKeyID = "AKIA" + "Q3EGRTLMXW7PZ2NB"
    static let awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "8zQ4vN2kLp"
    static let github = "ghp_" + "R8fLq2ZxV7nK4wPj9sT3bYcD6mHa1uGe0iXo"
    static let slack = "xoxb-" + "2816449923-6201938475-qT8bN3mVz1LpXc7RkW4yHs9D"

    @Test(arguments: [
        ("aws_access_key_id = \(awsKeyID)", "aws-access-key-id", awsKeyID),
        ("AWS_SECRET_ACCESS_KEY=\"\(awsSecret)\"", "aws-secret-access-key", awsSecret),
        ("-----BEGIN RSA PRIVATE KEY-----", "private-key", "-----BEGIN RSA PRIVATE KEY-----"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "private-key", "-----BEGIN OPENSSH PRIVATE KEY-----"),
        ("token: \(github)", "github-token", github),
        ("SLACK_BOT_TOKEN=\(slack)", "slack-token", slack),
        ("webhook: https://hooks.slack.com/services/T0A1B2C3D/B4E5F6G7H/" + "aB3dE5gH7jK9mN1pQ3sT5vX7", "slack-webhook",
         "https://hooks.slack.com/services/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"),
        ("db_password: 'Zq8Lx" + "Lw2vR9mTk4Pn'", "generic-secret", "Zq8LxLw2vR9mTk4Pn"),
        ("client_secret=\"9fK2mQ7xL4" + "pW8rT1vZ6nB3cH5\"", "generic-secret", "9fK2mQ7xL4pW8rT1vZ6nB3cH5"),
    ])
    func eachRuleFindsItsFormat(line: String, rule: String, value: String) {
        let found = SecretRules.scan(line)
        #expect(found.map(\.rule) == [rule], "\(line)")
        #expect(found.first?.value == value)
        #expect(found.first.map { !$0.masked.contains(String(value.dropFirst(4))) } ?? false, "the mask shows only the first characters")
    }

    @Test(arguments: [
        "password = ${DB_PASSWORD}",
        "api_key: changeme-changeme-changeme",
        "token: <your-token-here-please-fill-in>",
        "password: Password123456789",
        "secret_name = aaaaaaaaaaaaaaaaaaaaaaaa",
        "let tokenCount = computeTheNumberOfTokens()",
        "AKIA is how AWS key ids start",
        "-----BEGIN PUBLIC KEY-----",
        "short",
    ])
    func placeholdersAndLookAlikesAreNotFindings(line: String) {
        #expect(SecretRules.scan(line).isEmpty, "\(line) → \(SecretRules.scan(line).map(\.rule))")
    }

    @Test func theSpecificRuleWinsOverTheGenericOneAndColumnsAreReported() {
        let found = SecretRules.scan("github_token = \(Self.github) # and \(Self.awsKeyID)")
        #expect(found.map(\.rule) == ["github-token", "aws-access-key-id"])
        #expect(found.first?.column == 16)
    }

    @Test func entropyIsShannonsInBitsPerCharacter() {
        #expect(SecretRules.entropy("aaaa") == 0)
        #expect(SecretRules.entropy("abab") == 1)
        #expect(abs(SecretRules.entropy("abcdefgh") - 3) < 1e-9)
    }
}

@Suite struct UnifiedDiffTests {
    @Test func addedLinesKeepTheirFileAndLineInTheNewVersion() {
        let diff = """
            diff --git a/config/app.env b/config/app.env
            index 3b18e51..a3c4f2d 100644
            --- a/config/app.env
            +++ b/config/app.env
            @@ -2,0 +3,2 @@ LOG_LEVEL=info
            +API_KEY=abc
            +DEBUG=false
            @@ -10 +12 @@ PORT=8080
            -OLD=1
            +NEW=2
            diff --git a/gone.txt b/gone.txt
            deleted file mode 100644
            --- a/gone.txt
            +++ /dev/null
            @@ -1 +0,0 @@
            -bye
            diff --git a/new.txt b/new.txt
            new file mode 100644
            --- /dev/null
            +++ b/new.txt
            @@ -0,0 +1 @@
            +hello
            """
        #expect(UnifiedDiff.addedLines(diff) == [
            .init(path: "config/app.env", line: 3, text: "API_KEY=abc"),
            .init(path: "config/app.env", line: 4, text: "DEBUG=false"),
            .init(path: "config/app.env", line: 12, text: "NEW=2"),
            .init(path: "new.txt", line: 1, text: "hello"),
        ])
        #expect(UnifiedDiff.addedLines("").isEmpty)
    }
}

@Suite struct VulnerabilityReportTests {
    static func fixture(_ name: String) throws -> String {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/scan/\(name)")
        return try String(contentsOf: url, encoding: .utf8)
    }

    @Test func trivyJSONIsReadWithPackagesSeveritiesAndFixes() throws {
        let report = try VulnerabilityReport.parse(Self.fixture("trivy-image.json"))
        #expect(report.format == .trivy)
        #expect(report.target == "registry.local/api:3f2a9c1")
        #expect(report.findings.map(\.id) == ["CVE-2024-45490", "CVE-2023-50387", "CVE-2011-3374", "GHSA-952p-6rrq-rcjv"])
        #expect(report.findings.map(\.severity) == [.critical, .high, .low, .medium])
        #expect(report.findings[0].location == "libexpat1 2.5.0-1 (registry.local/api:3f2a9c1 (debian 12.8))")
        #expect(report.findings[0].fixedVersion == "2.5.0-1+deb12u1")
        #expect(report.findings[2].fixedVersion == nil)
        let clean = try VulnerabilityReport.parse(Self.fixture("trivy-clean.json"))
        #expect(clean.findings.isEmpty && clean.format == .trivy)
    }

    @Test func sarifSeveritiesComeFromScoresThenLevels() throws {
        let report = try VulnerabilityReport.parse(Self.fixture("trivy.sarif"))
        #expect(report.format == .sarif)
        #expect(report.target == "Trivy, CodeQL")
        let severities = Dictionary(uniqueKeysWithValues: report.findings.map { ($0.id, $0.severity) })
        #expect(severities == [
            "CVE-2024-45490": .critical, "CVE-2023-50387": .high, "CVE-2011-3374": .low,
            "js/sql-injection": .high, "js/unused-local-variable": .low, "js/xss": .medium,
        ])
        #expect(report.findings.first { $0.id == "js/sql-injection" }?.location == "src/db/users.js:42")
    }

    @Test func grypeJSONIsRead() throws {
        let report = try VulnerabilityReport.parse(Self.fixture("grype.json"))
        #expect(report.format == .grype)
        #expect(report.target == "registry.local/api:3f2a9c1")
        #expect(report.findings.map(\.severity) == [.critical, .low, .medium])
        #expect(report.findings[0].location == "libexpat1 2.5.0-1" && report.findings[0].fixedVersion == "2.5.0-1+deb12u1")
    }

    @Test(arguments: [
        ("", "the report is empty"),
        ("Usage: trivy [flags]", "the report is not JSON (it starts with 'Usage: trivy [flags]')"),
        ("[1, 2]", "the report is not a JSON object"),
        (#"{"hello": "world"}"#, "not a Trivy, SARIF 2.1.0 or Grype report"),
        (#"{"SchemaVersion": 1, "Results": []}"#, "schema version 1 is not supported"),
        (#"{"SchemaVersion": 2, "Results": {"a": 1}}"#, "Results is not a list"),
        (#"{"SchemaVersion": 2, "Results": [{"Target": "x", "Vulnerabilities": [{"Severity": "HIGH"}]}]}"#, "has no VulnerabilityID"),
        (#"{"version": "2.0.0", "runs": []}"#, "SARIF version 2.0.0 is not supported"),
        (#"{"version": "2.1.0", "runs": [{"results": [{"message": {"text": "x"}}]}]}"#, "has no ruleId"),
        (#"{"matches": [{"artifact": {}}]}"#, "matches[0] has no vulnerability.id"),
    ])
    func anUnreadableReportIsAnErrorNeverAPass(text: String, problem: String) {
        do {
            let report = try VulnerabilityReport.parse(text)
            Issue.record("accepted: \(report)")
        } catch {
            #expect(error.description.contains(problem), "\(error)")
        }
    }

    @Test func aFormatGivenExplicitlyMustMatch() {
        #expect(throws: VulnerabilityReport.ParseError.self) { try VulnerabilityReport.parse(#"{"matches": []}"#, format: .sarif) }
    }
}

@Suite struct ScanAllowlistTests {
    let text = """
        secrets:
          - path: "test/fixtures/**"
            rule: private-key
            reason: throw-away key for the TLS tests
            expires: 2027-06-30
          - fingerprint: 3f9a1c0d2e4b5a6f
            reason: revoked, history not rewritten
            expires: 2026-10-01
        vulnerabilities:
          - id: CVE-2024-45490
            reason: the parser is not reachable
            expires: 2027-01-31
          - id: CVE-2023-50387
            reason: expired acceptance
            expires: 2026-11-26
        """

    @Test func entriesAllowUntilTheirDateAndNotAfter() throws {
        let list = try ScanAllowlist.parse(text, file: "allow.yaml")
        let today = "2026-11-27"
        #expect(list.allowsSecret(path: "test/fixtures/tls/key.pem", rule: "private-key", fingerprint: "x", today: today)?.line == 2)
        #expect(list.allowsSecret(path: "test/fixtures/tls/key.pem", rule: "github-token", fingerprint: "x", today: today) == nil)
        #expect(list.allowsSecret(path: "src/key.pem", rule: "private-key", fingerprint: "x", today: today) == nil)
        #expect(list.allowsSecret(path: "any", rule: "any", fingerprint: "3f9a1c0d2e4b5a6f", today: today) == nil, "expired")
        #expect(list.allowsSecret(path: "any", rule: "any", fingerprint: "3f9a1c0d2e4b5a6f", today: "2026-10-01") != nil, "holds through its day")
        #expect(list.allowsVulnerability(id: "cve-2024-45490", today: today)?.reason == "the parser is not reachable")
        #expect(list.allowsVulnerability(id: "CVE-2023-50387", today: today) == nil)
        #expect(list.expired(today: today).map(\.subject) == ["fingerprint 3f9a1c0d2e4b5a6f", "CVE-2023-50387"])
        #expect(try ScanAllowlist.parse("", file: "empty.yaml") == ScanAllowlist())
    }

    @Test(arguments: [
        ("vulnerabilities:\n  - id: CVE-1\n    expires: 2027-01-01", "a.yaml:2: every entry needs a reason"),
        ("vulnerabilities:\n  - id: CVE-1\n    reason: because\n    expires: soon", "a.yaml:2: every entry needs expires: YYYY-MM-DD (got 'soon')"),
        ("vulnerabilities:\n  - reason: because\n    expires: 2027-01-01", "a.yaml:2: a vulnerabilities entry names an id"),
        ("secrets:\n  - rule: private-key\n    reason: because\n    expires: 2027-01-01", "a.yaml:2: a secrets entry names a path (glob) or a fingerprint"),
        ("secrets:\n  - path: x\n    why: because", "a.yaml:2: unknown field 'why' in secrets"),
        ("cves: []", "a.yaml:1: unknown section 'cves'"),
        ("secrets: {a: 1}", "a.yaml:1: secrets must be a list"),
        ("- a", "a.yaml:1: give a mapping"),
        ("secrets: [", "a.yaml: not valid YAML"),
    ])
    func badFilesAreRefusedNamingTheLine(text: String, problem: String) {
        do {
            let list = try ScanAllowlist.parse(text, file: "a.yaml")
            Issue.record("accepted \(list)")
        } catch {
            #expect(error.description.hasPrefix(problem), "\(error)")
        }
    }
}
