import Yams

/// What the readers of Gantry's YAML files share: every problem is collected with its
/// place (`file:line:column`) rather than stopping at the first, and an unknown key is
/// reported with the nearest known one.
protocol NodeReading {
    var file: String { get }
    var diagnostics: [PipelineDiagnostic] { get set }
}

extension NodeReading {
    mutating func report(_ node: Node?, _ message: String) {
        diagnostics.append(PipelineDiagnostic(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, message: message))
    }

    /// The entries of a mapping, reporting unknown keys (with a suggestion) and a non-mapping node.
    mutating func mapping(_ node: Node, _ what: String, keys: [String]) -> [String: (key: Node, value: Node)]? {
        guard let mapping = node.mapping else {
            report(node, "\(what) must be a mapping of \(keys.joined(separator: ", "))")
            return nil
        }
        var out: [String: (key: Node, value: Node)] = [:]
        for (key, value) in mapping {
            guard let name = key.string else {
                report(key, "\(what): keys must be text")
                continue
            }
            guard keys.contains(name) else {
                report(key, "unknown key '\(name)' in \(what)\(Suggestion.hint(for: name, in: keys)); known keys: \(keys.joined(separator: ", "))")
                continue
            }
            out[name] = (key, value)
        }
        return out
    }

    mutating func string(_ entry: (key: Node, value: Node)?, _ what: String) -> String? {
        guard let entry else { return nil }
        guard let scalar = entry.value.scalar else {
            report(entry.value, "\(what) must be text")
            return nil
        }
        return scalar.string
    }

    mutating func duration(_ entry: (key: Node, value: Node)?, _ what: String) -> Duration? {
        guard let text = string(entry, what) else { return nil }
        do { return try DurationParser.parse(text) } catch {
            report(entry?.value, "\(what): \(error)")
            return nil
        }
    }

    mutating func strings(_ entry: (key: Node, value: Node)?, _ what: String) -> [String] {
        guard let entry else { return [] }
        if let scalar = entry.value.scalar { return [scalar.string] }
        guard let sequence = entry.value.sequence else {
            report(entry.value, "\(what) must be a list of text")
            return []
        }
        return sequence.compactMap { item in
            guard let text = item.scalar?.string else {
                report(item, "\(what) must be a list of text")
                return nil
            }
            return text
        }
    }

    mutating func bool(_ entry: (key: Node, value: Node)?, _ what: String) -> Bool? {
        guard let entry else { return nil }
        guard let scalar = entry.value.scalar, let value = PlainScalar.bool(scalar) else {
            report(entry.value, "\(what) must be true or false")
            return nil
        }
        return value
    }
}
