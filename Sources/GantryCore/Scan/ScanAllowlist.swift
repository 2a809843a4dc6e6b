import Foundation
import Yams

/// Accepted findings of the scan gates, each with a reason and an expiry date,
/// kept in the repository so that every exception is reviewed like code:
///
/// ```yaml
/// secrets:
///   - path: "test/fixtures/**"       # a glob; with rule, only that rule
///     rule: private-key
///     reason: throw-away key for the TLS tests
///     expires: 2027-06-30
///   - fingerprint: 3f9a1c0d2e4b5a6f   # one finding, as the scan prints it
///     reason: revoked on 2026-11-02, rewriting history is not worth it
///     expires: 2027-01-31
/// vulnerabilities:
///   - id: CVE-2024-12345
///     reason: the vulnerable parser is not reachable from our code
///     expires: 2027-01-31
/// ```
/// An entry past its date no longer allows anything, and the scan says so.
public struct ScanAllowlist: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var id: String?
        public var path: String?
        public var rule: String?
        public var fingerprint: String?
        public var reason: String
        /// `YYYY-MM-DD`; the entry holds through that day.
        public var expires: String
        public var line: Int

        /// What the entry covers, for messages.
        public var subject: String {
            id ?? fingerprint.map { "fingerprint \($0)" } ?? [path.map { "path \($0)" }, rule.map { "rule \($0)" }].compactMap { $0 }.joined(separator: ", ")
        }

        public func isExpired(today: String) -> Bool { expires < today }
    }

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    public var secrets: [Entry] = []
    public var vulnerabilities: [Entry] = []

    public init(secrets: [Entry] = [], vulnerabilities: [Entry] = []) {
        self.secrets = secrets
        self.vulnerabilities = vulnerabilities
    }

    public static func parse(_ text: String, file: String) throws(ParseError) -> ScanAllowlist {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ParseError(description: "\(file): not valid YAML: \(error)")
        }
        guard let root else { return ScanAllowlist() }
        guard let mapping = root.mapping else { throw ParseError(description: "\(file):\(line(root)): give a mapping with secrets: and vulnerabilities:") }
        var list = ScanAllowlist()
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            switch key {
            case "secrets": list.secrets = try entries(value, file: file, section: key)
            case "vulnerabilities": list.vulnerabilities = try entries(value, file: file, section: key)
            default: throw ParseError(description: "\(file):\(line(keyNode)): unknown section '\(key)'; use secrets or vulnerabilities")
            }
        }
        return list
    }

    private static func entries(_ node: Node, file: String, section: String) throws(ParseError) -> [Entry] {
        if node.null != nil { return [] }
        guard let sequence = node.sequence else { throw ParseError(description: "\(file):\(line(node)): \(section) must be a list") }
        var out: [Entry] = []
        for item in sequence {
            let at = "\(file):\(line(item))"
            guard let fields = item.mapping else { throw ParseError(description: "\(at): each entry is a mapping (id/path/fingerprint, reason, expires)") }
            var values: [String: String] = [:]
            for (keyNode, value) in fields {
                let key = keyNode.string ?? ""
                let allowed = section == "secrets" ? ["path", "rule", "fingerprint", "reason", "expires"] : ["id", "reason", "expires"]
                guard allowed.contains(key) else {
                    throw ParseError(description: "\(at): unknown field '\(key)' in \(section); use \(allowed.joined(separator: ", "))")
                }
                guard let text = value.string, !text.isEmpty else { throw ParseError(description: "\(file):\(line(value)): \(key) must be text") }
                values[key] = text
            }
            guard let reason = values["reason"], reason.count >= 3 else {
                throw ParseError(description: "\(at): every entry needs a reason (why this finding is accepted)")
            }
            guard let expires = values["expires"], isDate(expires) else {
                throw ParseError(description: "\(at): every entry needs expires: YYYY-MM-DD (got '\(values["expires"] ?? "")')")
            }
            if section == "secrets" {
                guard values["path"] != nil || values["fingerprint"] != nil else {
                    throw ParseError(description: "\(at): a secrets entry names a path (glob) or a fingerprint")
                }
            } else {
                guard values["id"] != nil else { throw ParseError(description: "\(at): a vulnerabilities entry names an id (CVE-…, GHSA-…)") }
            }
            out.append(Entry(
                id: values["id"], path: values["path"], rule: values["rule"], fingerprint: values["fingerprint"],
                reason: reason, expires: expires, line: line(item)
            ))
        }
        return out
    }

    private static func line(_ node: Node) -> Int { node.mark?.line ?? 1 }

    static func isDate(_ text: String) -> Bool {
        Timestamp.parseISO8601(text + "T00:00:00Z") != nil && text.count == 10
    }

    /// The unexpired entry that accepts this secret finding, if any.
    public func allowsSecret(path: String, rule: String, fingerprint: String, today: String) -> Entry? {
        secrets.first { entry in
            guard !entry.isExpired(today: today) else { return false }
            if let wanted = entry.fingerprint, wanted != fingerprint { return false }
            if let glob = entry.path, !PathGlob.matches(glob, path) { return false }
            if let wanted = entry.rule, wanted != rule { return false }
            return true
        }
    }

    /// The unexpired entry that accepts this vulnerability, if any.
    public func allowsVulnerability(id: String, today: String) -> Entry? {
        vulnerabilities.first { $0.id?.caseInsensitiveCompare(id) == .orderedSame && !$0.isExpired(today: today) }
    }

    /// Entries past their date: they accept nothing any more.
    public func expired(today: String) -> [Entry] {
        (secrets + vulnerabilities).filter { $0.isExpired(today: today) }
    }
}
