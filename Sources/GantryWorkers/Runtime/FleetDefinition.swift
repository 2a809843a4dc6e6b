import Foundation
import GantryCore
import Yams

/// A kind's fleet definition, `workers/<kind>.yaml`: how its workers run by default.
///
/// ```yaml
/// kind: noop
/// concurrency: 16      # attempts one worker runs at once
/// lease: 30s           # how long a silent worker keeps a step
/// timeout: 10m         # per-attempt timeout when the step sets none
/// drain_grace: 30s     # on SIGTERM, how long in-flight attempts may finish
/// ```
public struct FleetDefinition: Sendable, Equatable {
    public var kind: String
    public var concurrency: Int
    public var lease: Duration
    public var timeout: Duration
    public var drainGrace: Duration
    /// The file it was read from; nil for the built-in defaults (no file for the kind).
    public var source: String?

    public init(kind: String, concurrency: Int = 8, lease: Duration = .seconds(30), timeout: Duration = .seconds(600), drainGrace: Duration = .seconds(30)) {
        self.kind = kind
        self.concurrency = concurrency
        self.lease = lease
        self.timeout = timeout
        self.drainGrace = drainGrace
    }

    /// Why a fleet file was refused; one line naming the file and field.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Reads `<directory>/<kind>.yaml`; the built-in defaults when the file does not exist.
    public static func load(kind: String, directory: String) throws(LoadError) -> FleetDefinition {
        let path = (directory as NSString).appendingPathComponent("\(kind).yaml")
        guard let data = FileManager.default.contents(atPath: path) else { return FleetDefinition(kind: kind) }
        var definition = try parse(String(decoding: data, as: UTF8.self), path: path, kind: kind)
        definition.source = path
        return definition
    }

    /// One line for the worker's log: which file set the kind's defaults, or that none did.
    public func describe(directory: String) -> String {
        let settings = "concurrency \(concurrency), lease \(DurationParser.format(lease)), timeout \(DurationParser.format(timeout)), drain grace \(DurationParser.format(drainGrace))"
        guard let source else {
            return "no fleet file \(kind).yaml in \(directory) (--fleet-dir, GANTRY_FLEET_DIR); built-in defaults for \(kind): \(settings)"
        }
        return "fleet file \(source) for \(kind): \(settings)"
    }

    /// Parses the text of a fleet file.
    public static func parse(_ text: String, path: String, kind: String) throws(LoadError) -> FleetDefinition {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw LoadError(description: "\(path): not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        guard let mapping = node?.mapping else { throw LoadError(description: "\(path): expected a mapping of settings") }
        var definition = FleetDefinition(kind: kind)
        let known: Set<String> = ["kind", "concurrency", "lease", "timeout", "drain_grace", "description"]
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else { continue }
            let place = "\(path):\(keyNode.mark.map { "\($0.line)" } ?? "?"): \(key)"
            guard known.contains(key) else {
                throw LoadError(description: "\(place): unknown setting; known: \(known.sorted().joined(separator: ", "))")
            }
            let value = valueNode.string ?? ""
            switch key {
            case "kind":
                guard value == kind else { throw LoadError(description: "\(place): says '\(value)' but the file is for kind '\(kind)'") }
            case "concurrency":
                guard let number = Int(value), number >= 1, number <= 4096 else {
                    throw LoadError(description: "\(place): must be a whole number from 1 to 4096")
                }
                definition.concurrency = number
            case "lease", "timeout", "drain_grace":
                let duration: Duration
                do { duration = try DurationParser.parse(value) } catch { throw LoadError(description: "\(place): \(error)") }
                if key == "lease" {
                    guard duration >= .seconds(1) else { throw LoadError(description: "\(place): must be at least 1s") }
                    definition.lease = duration
                } else if key == "timeout" {
                    guard duration > .zero else { throw LoadError(description: "\(place): must be positive") }
                    definition.timeout = duration
                } else {
                    definition.drainGrace = duration
                }
            default:
                break
            }
        }
        return definition
    }
}
