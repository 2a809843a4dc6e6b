import GantryCore
import GantryRedis
import GantryRuntime
import Logging

/// Runs one attempt: resolves the secrets its inputs name (here, on the worker, and nowhere
/// else), runs the executor of its kind in a task that a stop (timeout, lost lease, drain,
/// cancel) cancels, and turns how it ended into the attempt's result, redacted.
struct AttemptExecution: Sendable {
    let state: WorkerState

    private enum Ending: Sendable {
        case finished(Result<StepOutputs, any Error>)
        case stopped(StopReason)
    }

    func execute(_ start: AttemptRunner.Start) async -> AttemptResult {
        let (job, deliveryID, deadline) = (start.job, start.deliveryID, start.deadline)
        let configuration = state.configuration
        let startedUs = WallClock.nowUs()
        let inputs = JSONValue.parseObject(job.inputs) ?? [:]
        var bindings = (JSONValue.parseObject(job.bindings) ?? [:]).compactMapValues(\.stringValue)
        var secretValues: [String] = []
        var missingSecrets: [String] = []
        var shortSecrets: [String] = []
        let scope = configuration.secretScope.current
        if job.inputs.contains(utf8: "secrets.") {
            for expression in Expressions.references(in: .object(inputs)) where expression.hasPrefix("secrets.") {
                let name = String(expression.dropFirst("secrets.".count))
                // Another pool's secret is never resolved here, even if this worker was given it.
                if scope.permits(name), let value = configuration.secrets.value(name) {
                    // A value too short to mask would be found (and starred) all over the logs, or
                    // guessed from what is left: refused when the worker sets a minimum.
                    if value.utf8.count < configuration.minSecretLength { shortSecrets.append(name) }
                    bindings[expression] = value
                    secretValues.append(value)
                } else {
                    missingSecrets.append(name)
                }
            }
        }
        let redactor = Redactor(secretValues)
        let log = StepLog(redactor: redactor)
        let attemptKey = AttemptKey(step: job.key, attempt: job.attempt)
        state.liveLogs.begin(deliveryID, key: attemptKey, log: log)
        let lease = LeaseCheck { [queue = state.queue, heartbeat = state.heartbeat, control = state.control] in
            let owned = try await queue.renew(kind: job.kind, consumer: configuration.id, ids: [deliveryID], on: heartbeat)
            guard owned.contains(deliveryID) else {
                control.stop(deliveryID, .leaseLost)
                throw LeaseLost()
            }
        }
        let context = StepContext(
            job: job, inputs: inputs, bindings: bindings, deadline: deadline,
            log: log, scope: scope, workerLogger: state.logger, lease: lease
        )
        let ending: Ending
        if !missingSecrets.isEmpty {
            ending = .finished(.failure(StepFailure(
                "secret \(missingSecrets.sorted().joined(separator: ", ")) is not available on worker \(configuration.id): "
                    + "set GANTRY_SECRET_\(missingSecrets.sorted()[0]) or put a file of that name in --secrets-dir"
            )))
        } else if !shortSecrets.isEmpty {
            ending = .finished(.failure(StepFailure(
                "secret \(shortSecrets.sorted().joined(separator: ", ")) is shorter than the worker's --min-secret-length "
                    + "\(configuration.minSecretLength) and could not be redacted safely; use a longer value", retryable: false
            )))
        } else {
            // The reader only hands over kinds whose executor exists (Worker checks them at start).
            ending = await run(state.registry.executor(for: job.baseKind)!, context, deliveryID: deliveryID)
        }
        log.finish()
        var result = AttemptResult(
            key: attemptKey, kind: job.baseKind, status: .succeeded, worker: configuration.id,
            logTail: log.excerpt, logSHA256: log.sha256, startedAtUs: startedUs, finishedAtUs: WallClock.nowUs(), deliveryID: deliveryID
        )
        switch ending {
        case .finished(.success(let outputs)):
            result.outputs = Self.redacted(.object(outputs), redactor).jsonText
        case .finished(.failure(let failure as StepFailure)):
            result.status = .failed
            result.exitCode = failure.exitCode
            result.retryable = failure.retryable
            // Redacted before it is cut to one line: a cut must never leave half a secret.
            result.error = Self.oneLine(redactor.redact(failure.message))
        case .finished(.failure(is LeaseLost)), .stopped(.leaseLost):
            result.status = .stale
            result.error = "the lease was lost before the attempt finished"
        case .finished(.failure(let error)):
            if Task.isCancelled {
                result.status = .interrupted
                result.error = "the worker was stopped"
            } else {
                result.status = .failed
                result.error = Self.oneLine(redactor.redact("\(job.baseKind): \(error)"))
            }
        case .stopped(.timeout):
            result.status = .timedOut
            result.error = "the attempt ran longer than its timeout of \(DurationParser.format(job.timeout))"
        case .stopped(.drain):
            result.status = .interrupted
            result.error = "the worker was drained before the attempt finished"
        case .stopped(.canceled):
            result.status = .canceled
            result.retryable = false
            result.error = "the run was canceled; the attempt was stopped"
        }
        // Nothing a secret could have reached leaves the worker unredacted.
        result.error = result.error.map(redactor.redact)
        if result.status != .succeeded {
            context.logger.info("attempt ended", metadata: ["gantry.status": "\(result.status.rawValue)", "error": "\(result.error ?? "")"])
        }
        state.liveLogs.end(deliveryID, status: result.status.rawValue, silent: log.isEmpty)
        return result
    }

    /// Runs the executor in a task of its own that a stop (timeout, lost lease, drain, cancel)
    /// cancels; waits for it to return either way. A stop asked for before it returned decides
    /// how the attempt ends, whatever the executor made of its cancellation.
    private func run(_ executor: any StepExecutor, _ context: StepContext, deliveryID: String) async -> Ending {
        let control = state.control
        let task = Task {
            let result: Result<StepOutputs, any Error>
            do { result = .success(try await executor.execute(context)) } catch { result = .failure(error) }
            return control.finish(deliveryID).map(Ending.stopped) ?? .finished(result)
        }
        control.attach(deliveryID) { task.cancel() }
        return await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
    }

    /// `value` with every secret value in its strings (and keys) replaced by `***`.
    private static func redacted(_ value: JSONValue, _ redactor: Redactor) -> JSONValue {
        if redactor.isEmpty { return value }
        switch value {
        case .string(let text): return .string(redactor.redact(text))
        case .array(let items): return .array(items.map { redacted($0, redactor) })
        case .object(let fields):
            var out: [String: JSONValue] = [:]
            for (key, field) in fields { out[redactor.redact(key)] = redacted(field, redactor) }
            return .object(out)
        case .null, .bool, .number: return value
        }
    }

    private static func oneLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return line.count > 500 ? String(line.prefix(500)) + "…" : line
    }
}
