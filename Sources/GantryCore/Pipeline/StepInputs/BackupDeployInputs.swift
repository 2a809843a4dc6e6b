import Foundation

extension StepInputSchemas {
    /// `backup`: a tar.gz of paths, or a command's stdout, streamed to S3; with
    /// `action: restore`, a backup brought back into a directory or fed to a command
    /// (BackupExecutor). The two actions read different keys. Which of those keys are
    /// required, and which ones the other action would ignore, depends on `action`, so
    /// the rules check them against the whole mapping.
    static let backup = InputSchema(
        [
            .optional("action", .oneOf(BackupInputs.Action.words)),
            // A backup (the default action).
            .optional("source", .object(InputSchema(
                [
                    .optional("paths", .list(BackupDeployRules.nonEmpty("a path"), minCount: 1)),
                    .optional("command", BackupDeployRules.nonEmpty("a command")),
                ],
                exclusive: [["paths", "command"]],
                oneRequired: [["paths", "command"]]
            ))),
            .optional("to", .checkedText("an s3://bucket/prefix/ URL", BackupDeployRules.s3Destination)),
            .optional("name", BackupDeployRules.nonEmpty("an object name")),
            .optional("retention_days", .integer(min: 1)),
            .optional("storage_class", .checkedText("an S3 storage class such as STANDARD_IA", BackupDeployRules.storageClass)),
            // The executor silently raises anything under 5 MiB (S3's smallest part) to 5, and
            // S3 refuses a part over 5 GiB: both are refused here, where the writer sees it.
            .optional("part_size_mb", .integer(min: 5, max: 5_120)),
            // A restore.
            .optional("from", .checkedText("the s3://bucket/key URL of a backup", BackupDeployRules.s3Backup)),
            .optional("to_path", BackupDeployRules.nonEmpty("a directory")),
            .optional("to_command", BackupDeployRules.nonEmpty("a command")),
            // Either: where S3 is and who signs (default: the worker's AWS_* variables).
            .optional("endpoint", .checkedText("an http:// or https:// URL", BackupDeployRules.httpURL)),
            .optional("region", .checkedText("an S3 region such as eu-west-1", BackupDeployRules.region)),
            .optional("access_key_id", .text),
            .optional("secret_access_key", .text),
        ],
        exclusive: [["to_path", "to_command"]],
        rules: [
            // BackupInputs reads these as written (`InputReading.asWritten`): never resolved.
            InputRule { BackupDeployRules.readAsWritten($0, ["action", "part_size_mb", "retention_days", "storage_class", "region"], by: "backup") },
            InputRule { BackupDeployRules.backupRequired($0) },
            InputRule { BackupDeployRules.backupActionKeys($0) },
            InputRule { BackupDeployRules.credentialsPaired($0) },
            InputRule { BackupDeployRules.nameUnderPrefix($0) },
        ]
    )

    /// `deploy`: a release or a rollback of a service, on the local target (instances behind
    /// the worker's nginx) or the kubernetes target (through kubectl) (DeployExecutor,
    /// LocalTarget, KubernetesTarget). The keys depend on `target` and `action`, so the
    /// rules check them against the whole mapping: what a local deploy requires, what only
    /// one target reads, what a rollback ignores. `kubectl` is not a key: the program is
    /// the worker's setting, and a step that names one is refused.
    static let deploy = InputSchema(
        [
            .optional("target", .oneOf(DeployInputs.Target.words)),
            .optional("action", .oneOf(DeployInputs.Action.words)),
            // Names reach nginx's configuration, the state directory and kubectl's command
            // line: PipelineParser.checkDeployNames checks the same (SafeName).
            .optional("service", .checkedText("a name", InputNames.safeName)),
            .optional("services", .list(.checkedText("a name", InputNames.safeName), minCount: 1)),
            .optional("strategy", .oneOf(DeployInputs.Strategy.words)),
            .optional("rollback_on_failure", .boolean),
            // Local: path, expect_status, timeout (per instance). Kubernetes: timeout (of the
            // rollout; kubectl takes whole seconds, and 0s would wait for ever), and url and
            // expect_status for a blue-green deploy.
            .optional("health", .object(InputSchema([
                .optional("path", .checkedText("a path such as /healthz", BackupDeployRules.urlPath)),
                .optional("url", .checkedText("an http:// or https:// URL", BackupDeployRules.httpURL)),
                .optional("expect_status", .integer(min: 100, max: 599)),
                .optional("timeout", .duration(min: .seconds(1))),
            ]))),
            // The local target.
            .optional("version", BackupDeployRules.nonEmpty("a version")),
            .optional("run", BackupDeployRules.nonEmpty("a command")),
            .optional("env", .map(.text, keys: InputNames.variableName)),
            .optional("instances", .integer(min: 1, max: 32)),
            .optional("listen", .checkedText("host:port, e.g. 127.0.0.1:8300", BackupDeployRules.listen)),
            // 0s is a choice: the old release stops as soon as the new one serves.
            .optional("rollback_window", .duration(min: .zero)),
            .optional("workdir", BackupDeployRules.nonEmpty("a directory")),
            .optional("to_version", BackupDeployRules.nonEmpty("a version")),
            // The kubernetes target (the local target takes image as the version when version is absent).
            .optional("image", BackupDeployRules.nonEmpty("an image")),
            .optional("container", .checkedText("a name", InputNames.safeName)),
            .optional("namespace", .checkedText("a name", InputNames.safeName)),
            .optional("context", .checkedText("a name", InputNames.safeName)),
        ],
        // With both, the local target would check service and roll back only services.
        exclusive: [["service", "services"]],
        oneRequired: [["service", "services"]],
        rules: [
            // DeployInputs reads these as written (`InputReading.asWritten`): `instances: "${{ … }}"`
            // would fail the step on the worker, after the steps before it ran.
            InputRule {
                BackupDeployRules.readAsWritten($0, [
                    "target", "action", "strategy", "instances", "rollback_on_failure", "services[]",
                    "health.path", "health.expect_status", "health.timeout",
                ], by: "deploy")
            },
            InputRule { BackupDeployRules.deployRequired($0) },
            InputRule { BackupDeployRules.deployTargetKeys($0) },
            InputRule { BackupDeployRules.deployActionKeys($0) },
            InputRule { BackupDeployRules.kubernetesHealth($0) },
        ]
    )
}

/// The checks behind the `backup` and `deploy` schemas. Rules see the mapping as JSON, with
/// expressions unresolved. A rule that hangs on a word (`target`, `action`, `strategy`)
/// stays silent when that word is an expression or misspelt: the word's own check reports it.
private enum BackupDeployRules {
    // MARK: Values

    /// Text that must not be empty (the executor refuses an empty one, or makes nonsense of it).
    static func nonEmpty(_ what: String) -> InputType {
        .checkedText(what, { $0.isEmpty ? "must not be empty" : nil })
    }

    /// Where a backup goes, as `S3Location` reads it: a prefix (ending in /) or a whole key.
    static let s3Destination: @Sendable (String) -> String? = { BackupDeployRules.s3Problem($0, needsKey: false) }

    /// A backup to restore: a whole key (a backup step's `outputs.url`).
    static let s3Backup: @Sendable (String) -> String? = { BackupDeployRules.s3Problem($0, needsKey: true) }

    /// As `S3Location.init?(_:)` (GantryHTTP) parses: `s3://`, then a bucket of lower-case
    /// letters, digits, '-' and '.', then the key.
    static func s3Problem(_ text: String, needsKey: Bool) -> String? {
        guard text.hasPrefix("s3://") else { return "give an s3://bucket/… URL" }
        let rest = text.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard !bucket.isEmpty, bucket.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" || $0 == "." }) else {
            return "a bucket's name is lower-case letters, digits, '-' and '.'"
        }
        if needsKey, rest.dropFirst(bucket.count + 1).isEmpty {
            return "name the backup's key after the bucket (s3://bucket/key), as a backup step's outputs.url does"
        }
        return nil
    }

    /// An S3 endpoint or a health URL: the HTTP client takes http:// and https:// only.
    static let httpURL: @Sendable (String) -> String? = { text in
        guard text.hasPrefix("http://") || text.hasPrefix("https://") else { return "give an http:// or https:// URL" }
        return InputSchemaChecker.urlProblem(text, schemes: ["http", "https"])
    }

    /// The region becomes part of the AWS host name (`s3.REGION.amazonaws.com`): a plain name,
    /// never a '/', '@' or ':' that would move the request elsewhere.
    static let region: @Sendable (String) -> String? = { text in
        SafeName.isValid(text) ? nil : "a region is \(SafeName.rule)"
    }

    /// S3's storage classes are upper-case words (`STANDARD_IA`, `GLACIER_IR`); S3-compatible
    /// servers may define their own, so the word is not checked against AWS's list. It goes
    /// into a request header as written.
    static let storageClass: @Sendable (String) -> String? = { text in
        !text.isEmpty && text.utf8.allSatisfy({ (65...90).contains($0) || (48...57).contains($0) || $0 == 95 })
            ? nil : "a storage class is upper-case letters, digits and '_', e.g. STANDARD_IA"
    }

    /// The local target probes `http://127.0.0.1:PORT` + path: without the leading '/', or with
    /// a space, no instance could ever pass.
    static let urlPath: @Sendable (String) -> String? = { text in
        text.hasPrefix("/") && text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F })
            ? nil : "a path starts with '/' and has no spaces, e.g. /healthz"
    }

    /// The address nginx serves the service on (it is written into nginx's configuration).
    static let listen: @Sendable (String) -> String? = { text in
        ListenAddress.isValid(text) ? nil : "give the address nginx serves the service on as host:port, e.g. 127.0.0.1:8300"
    }

    // MARK: The mapping

    struct Found {
        let label: String
        let value: JSONValue
    }

    /// What stands at `path`: `key`, `key.nested` (a key of a nested mapping) or `key[]`
    /// (the items of a list), each with the label to name it by.
    static func values(_ inputs: [String: JSONValue], at path: String) -> [Found] {
        if path.hasSuffix("[]") {
            let key = String(path.dropLast(2))
            guard case .array(let items)? = inputs[key] else { return [] }
            return items.enumerated().map { Found(label: "with.\(key)[\($0.offset)]", value: $0.element) }
        }
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        if parts.count == 2 {
            guard case .object(let nested)? = inputs[parts[0]], let value = nested[parts[1]] else { return [] }
            return [Found(label: "with.\(path)", value: value)]
        }
        return inputs[path].map { [Found(label: "with.\(path)", value: $0)] } ?? []
    }

    /// The labels of the paths given (a `~` counts: the writer put it there).
    static func given(_ inputs: [String: JSONValue], _ paths: [String]) -> [String] {
        paths.flatMap { values(inputs, at: $0) }.map(\.label)
    }

    /// Given with a value: the executor takes a `~` for a missing key.
    static func has(_ inputs: [String: JSONValue], _ path: String) -> Bool {
        values(inputs, at: path).contains { $0.value != .null }
    }

    /// The word written at `key` (`fallback` when the key is absent), or nil when it is an
    /// expression or not one of `words`.
    static func word(_ inputs: [String: JSONValue], _ key: String, default fallback: String, of words: [String]) -> String? {
        guard let value = inputs[key] else { return fallback }
        guard case .string(let word) = value, words.contains(word) else { return nil }
        return word
    }

    static func targetWord(_ inputs: [String: JSONValue]) -> String? {
        word(inputs, "target", default: "local", of: ["local", "kubernetes"])
    }

    static func deployAction(_ inputs: [String: JSONValue]) -> String? {
        word(inputs, "action", default: "deploy", of: ["deploy", "rollback"])
    }

    static func backupAction(_ inputs: [String: JSONValue]) -> String? {
        word(inputs, "action", default: "backup", of: ["backup", "restore"])
    }

    static func isExpression(_ value: JSONValue) -> Bool {
        if case .string(let text) = value { return text.contains("${{") }
        return false
    }

    /// "a", "a and b", "a, b and c", followed by "is" or "are".
    static func sentence(_ labels: [String]) -> String {
        let list = labels.count > 1 ? labels.dropLast().joined(separator: ", ") + " and " + (labels.last ?? "") : labels.joined()
        return list + (labels.count == 1 ? " is" : " are")
    }

    // MARK: Rules of both kinds

    /// Keys the executor reads as written (their `InputReading` is `.asWritten`): an expression
    /// there is never resolved, so the step would fail on the worker after the steps before it
    /// ran (a number or a boolean is not read from unresolved text).
    static func readAsWritten(_ inputs: [String: JSONValue], _ paths: [String], by kind: String) -> String? {
        let found = paths.flatMap { values(inputs, at: $0) }.filter { isExpression($0.value) }.map(\.label)
        guard !found.isEmpty else { return nil }
        return "\(sentence(found)) read by the \(kind) executor as written, so an expression (${{ … }}) there is never resolved; write the value out"
    }

    // MARK: backup

    static let backupOnly = ["source", "to", "name", "retention_days", "storage_class", "part_size_mb"]
    static let restoreOnly = ["from", "to_path", "to_command"]

    static func backupRequired(_ inputs: [String: JSONValue]) -> String? {
        guard let action = backupAction(inputs) else { return nil }
        var problems: [String] = []
        if action == "backup" {
            let missing = ["to", "source"].filter { !has(inputs, $0) }.map { "with." + $0 }
            if !missing.isEmpty {
                problems.append("\(sentence(missing)) required for a backup (with.to: where it goes; with.source: its paths or command)")
            }
        } else {
            if !has(inputs, "from") {
                problems.append("with.from is required when action is restore (the s3:// URL of a backup)")
            }
            if !has(inputs, "to_path") && !has(inputs, "to_command") {
                problems.append("with.to_path or with.to_command is required when action is restore")
            }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// A key of the other action would be ignored: a restore with `to:` writes nothing there.
    static func backupActionKeys(_ inputs: [String: JSONValue]) -> String? {
        guard let action = backupAction(inputs) else { return nil }
        if action == "backup" {
            let misplaced = given(inputs, restoreOnly)
            return misplaced.isEmpty ? nil : "\(sentence(misplaced)) read only by a restore (action: restore)"
        }
        let misplaced = given(inputs, backupOnly)
        return misplaced.isEmpty ? nil : "\(sentence(misplaced)) read only by a backup; a restore reads with.from and with.to_path or with.to_command"
    }

    static func credentialsPaired(_ inputs: [String: JSONValue]) -> String? {
        has(inputs, "access_key_id") == has(inputs, "secret_access_key")
            ? nil : "give both with.access_key_id and with.secret_access_key, or neither (the worker's AWS_* variables)"
    }

    /// `name` is appended only to a prefix (a `to` ending in / or naming just the bucket); after
    /// a whole key it would be ignored. A `to` ending in an expression may still end in /.
    static func nameUnderPrefix(_ inputs: [String: JSONValue]) -> String? {
        guard has(inputs, "name"), case .string(let to)? = inputs["to"], to.hasPrefix("s3://") else { return nil }
        let rest = to.dropFirst(5)
        guard let slash = rest.firstIndex(of: "/"), !rest[rest.index(after: slash)...].isEmpty,
              !to.hasSuffix("/"), !to.hasSuffix("}}") else { return nil }
        return "with.name is used only when with.to is a prefix (ending in /); with.to names the whole key, so name would be ignored"
    }

    // MARK: deploy

    /// Read only by the local target (`health.path` is its probe).
    static let localOnly = ["version", "run", "env", "instances", "listen", "rollback_window", "workdir", "to_version", "health.path"]
    /// Read only by the kubernetes target (`health.url` is its blue-green probe).
    static let kubernetesOnly = ["container", "namespace", "context", "health.url"]

    static func deployRequired(_ inputs: [String: JSONValue]) -> String? {
        guard let target = targetWord(inputs), deployAction(inputs) == "deploy" else { return nil }
        var missing: [String] = []
        if target == "local" {
            // The local target takes image as the version when version is absent.
            if !has(inputs, "version") && !has(inputs, "image") { missing.append("with.version") }
            if !has(inputs, "run") { missing.append("with.run") }
            if !has(inputs, "listen") { missing.append("with.listen") }
        } else if !has(inputs, "image") {
            missing.append("with.image")
        }
        return missing.isEmpty ? nil : "\(sentence(missing)) required for a deploy to the \(target) target"
    }

    /// Keys of the other target would be ignored; the kubernetes target also takes only
    /// Deployment names (lower-case letters, digits and '-').
    static func deployTargetKeys(_ inputs: [String: JSONValue]) -> String? {
        guard let target = targetWord(inputs) else { return nil }
        var problems: [String] = []
        let other = target == "local" ? "kubernetes" : "local"
        let foreign = given(inputs, target == "local" ? kubernetesOnly : localOnly)
        if !foreign.isEmpty {
            problems.append("\(sentence(foreign)) read only by the \(other) target; this step's target is \(target)")
        }
        if target == "local", has(inputs, "version"), has(inputs, "image") {
            problems.append("with.image is the local target's version only when with.version is absent, so it would be ignored; give one of them")
        }
        if target == "kubernetes" {
            for found in values(inputs, at: "service") + values(inputs, at: "services[]") {
                guard case .string(let name) = found.value, !name.contains("${{") else { continue }
                if name.isEmpty || !name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" }) {
                    problems.append("\(found.label) '\(name.prefix(80))' must be a Deployment's name on the kubernetes target: lower-case letters, digits and '-'")
                }
            }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// A rollback returns to the release before (on the local target, `to_version` names
    /// another): what only a release reads would be ignored, and the other way round.
    static func deployActionKeys(_ inputs: [String: JSONValue]) -> String? {
        guard let action = deployAction(inputs) else { return nil }
        var problems: [String] = []
        if action == "rollback" {
            let misplaced = given(inputs, ["strategy", "rollback_on_failure", "version", "image"])
            if !misplaced.isEmpty {
                problems.append("\(sentence(misplaced)) read only by a deploy (action: deploy); a rollback returns to the release before")
            }
            if inputs["services"] != nil, inputs["to_version"] != nil {
                problems.append("with.to_version is read only with with.service: a rollback of with.services returns each to its release before")
            }
        } else {
            let misplaced = given(inputs, ["services", "to_version"])
            if !misplaced.isEmpty {
                problems.append("\(sentence(misplaced)) read only by a rollback (action: rollback); a deploy names one service in with.service")
            }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// On kubernetes, `health.url` (answering `health.expect_status`) is checked only before a
    /// blue-green switch; a rolling deploy and a rollback wait for `kubectl rollout status`.
    static func kubernetesHealth(_ inputs: [String: JSONValue]) -> String? {
        guard targetWord(inputs) == "kubernetes", let action = deployAction(inputs),
              let strategy = word(inputs, "strategy", default: "rolling", of: ["rolling", "blue-green"]) else { return nil }
        let probe = given(inputs, ["health.url", "health.expect_status"])
        guard !probe.isEmpty else { return nil }
        guard action == "deploy", strategy == "blue-green" else {
            return "\(sentence(probe)) checked only by a blue-green deploy on the kubernetes target (strategy: blue-green); a rolling deploy and a rollback wait for kubectl rollout status within with.health.timeout"
        }
        return has(inputs, "health.url") ? nil : "with.health.expect_status is the status with.health.url must answer; give with.health.url"
    }
}
