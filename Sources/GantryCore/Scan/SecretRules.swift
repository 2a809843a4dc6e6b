import Foundation

/// Built-in rules that find credentials in text, one line at a time.
///
/// Each rule names a credential format whose shape is distinctive (AWS access key
/// ids, private key blocks, GitHub and Slack tokens), plus one generic rule: an
/// assignment to a name that sounds secret (`password`, `api_key`, `token` …)
/// of a long value that looks random (Shannon entropy ≥ 3.5 bits per character),
/// which skips placeholders such as `${DB_PASSWORD}` or `changeme`.
public enum SecretRules {
    public struct Rule: Sendable {
        public let id: String
        public let description: String
        let regex: NSRegularExpression
        /// The capture group holding the secret (0: the whole match).
        let group: Int
        /// Only for the generic rule: the value must look random.
        let minimumEntropy: Double?
    }

    /// A credential found on one line.
    public struct Match: Sendable, Equatable {
        public let rule: String
        /// The credential itself. Never log it: use `masked`.
        public let value: String
        /// 1-based column of the value in the line.
        public let column: Int

        /// The first four characters, then only the length: enough to recognise, nothing to use.
        public var masked: String { SecretRules.mask(value) }
    }

    public static let all: [Rule] = [
        rule("aws-access-key-id", "AWS access key id", #"\b((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b"#, group: 1),
        rule("aws-secret-access-key", "AWS secret access key",
             #"(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"#, group: 1),
        rule("private-key", "private key block", #"-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|PGP|ENCRYPTED) )?PRIVATE KEY(?: BLOCK)?-----"#, group: 0),
        rule("github-token", "GitHub token", #"\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b"#, group: 1),
        rule("slack-token", "Slack token", #"\b(xox[baprs]-[0-9A-Za-z-]{10,})"#, group: 1),
        rule("slack-webhook", "Slack incoming-webhook URL",
             #"(https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,})"#, group: 1),
        rule("generic-secret", "high-entropy value assigned to a secret-sounding name",
             #"(?i)(?:secret|token|passw(?:or)?d|pwd|api_?key|access_?key|private_?key|auth_?key|client_?secret)[A-Za-z0-9_]*["']?\s*[:=]\s*["']?([A-Za-z0-9/+_\-=.~]{16,}+)(?!\()"#,
             group: 1, minimumEntropy: 3.5),
    ]

    private static func rule(_ id: String, _ description: String, _ pattern: String, group: Int, minimumEntropy: Double? = nil) -> Rule {
        // The patterns are constants checked by the tests; a typo is a programming error.
        Rule(id: id, description: description, regex: try! NSRegularExpression(pattern: pattern), group: group, minimumEntropy: minimumEntropy)
    }

    /// Every credential on `line`; the specific rules win over the generic one for the same text.
    public static func scan(_ line: String) -> [Match] {
        guard line.utf8.count >= 16 else { return [] }
        let text = line as NSString
        var found: [Match] = []
        var covered: [NSRange] = []
        for rule in all {
            for result in rule.regex.matches(in: line, range: NSRange(location: 0, length: text.length)) {
                let range = result.range(at: rule.group)
                guard range.location != NSNotFound else { continue }
                if covered.contains(where: { NSIntersectionRange($0, range).length > 0 }) { continue }
                let value = text.substring(with: range)
                if let minimum = rule.minimumEntropy, !looksRandom(value, minimum: minimum) { continue }
                covered.append(range)
                let column = (text.substring(to: range.location) as String).count + 1
                found.append(Match(rule: rule.id, value: value, column: column))
            }
        }
        return found.sorted { $0.column < $1.column }
    }

    /// Shannon entropy of the characters, in bits per character.
    public static func entropy(_ value: String) -> Double {
        var counts: [Character: Int] = [:]
        for character in value { counts[character, default: 0] += 1 }
        let total = Double(value.count)
        return counts.values.reduce(0) { sum, count in
            let p = Double(count) / total
            return sum - p * log2(p)
        }
    }

    static func looksRandom(_ value: String, minimum: Double) -> Bool {
        let lowered = value.lowercased()
        let placeholders = ["changeme", "example", "placeholder", "xxxx", "your_", "dummy", "redacted", "password", "passwd",
                            "secret", "token", "sample", "<", "${", "{{"]
        if placeholders.contains(where: { lowered.contains($0) }) { return false }
        // Random strings of this length mix letters and digits; identifiers and words do not.
        guard value.contains(where: \.isNumber), value.contains(where: \.isLetter) else { return false }
        return entropy(value) >= minimum
    }

    public static func mask(_ value: String) -> String {
        "\(value.prefix(4))… (\(value.count) chars)"
    }
}
