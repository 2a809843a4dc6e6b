import Foundation

/// Where a worker finds the secrets pipelines name (`${{ secrets.NAME }}`): the
/// environment variable `GANTRY_SECRET_NAME`, else the file `NAME` in the secrets
/// directory (the layout of a Kubernetes secret volume; one trailing newline is
/// dropped). Values are read when a step needs them and never leave the worker
/// unredacted.
public struct SecretStore: Sendable {
    private let environment: [String: String]
    private let directory: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, directory: String?) {
        self.environment = environment.filter { $0.key.hasPrefix("GANTRY_SECRET_") }
        self.directory = directory
    }

    /// The secret's value, or nil when this worker does not have it.
    public func value(_ name: String) -> String? {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }), !name.isEmpty else { return nil }
        if let value = environment["GANTRY_SECRET_\(name)"] { return value }
        guard let directory, let data = FileManager.default.contents(atPath: directory + "/" + name) else { return nil }
        var text = String(decoding: data, as: UTF8.self)
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}

/// Replaces every resolved secret value in a text with `***`. A multi-line secret
/// is also redacted line by line, so a log that splits it across lines shows none of it.
public struct Redactor: Sendable {
    private let needles: [String]

    public init(_ secrets: [String]) {
        var needles: Set<String> = []
        for secret in secrets where !secret.isEmpty {
            needles.insert(secret)
            for line in secret.split(whereSeparator: \.isNewline) where line.count >= 4 {
                needles.insert(String(line))
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        self.needles = needles.sorted { $0.count > $1.count }
    }

    public var isEmpty: Bool { needles.isEmpty }

    /// Where `text` may be cut so that what comes before it can be redacted and shown now and
    /// what follows kept for the next piece: no secret crosses the cut, and the last
    /// `longest - 1` characters (the start of a secret the next piece may finish) stay behind.
    func safeCut(_ text: String) -> String.Index {
        guard let longest = needles.first?.count, longest > 1 else { return text.endIndex }
        var cut = text.index(text.endIndex, offsetBy: -(longest - 1), limitedBy: text.startIndex) ?? text.startIndex
        var moved = true
        while moved {
            moved = false
            for needle in needles {
                for range in text.ranges(of: needle) where range.lowerBound < cut && range.upperBound > cut {
                    cut = range.lowerBound
                    moved = true
                }
            }
        }
        return cut
    }

    public func redact(_ text: String) -> String {
        guard !needles.isEmpty else { return text }
        var out = text
        for needle in needles where out.contains(needle) {
            out = out.replacingOccurrences(of: needle, with: "***")
        }
        return out
    }
}
