import Crypto
import GantryCore
import GantryProcess
import Synchronization

/// A step's log: lines an executor writes. The last `capacity` bytes are kept for
/// the attempt record; every line also waits in an outbox until the worker ships
/// it to the attempt's live log stream in Redis (`gantry logs --follow`).
public final class StepLog: Sendable {
    private struct State {
        var lines: [String] = []
        var bytes = 0
        var dropped = 0
        var outbox: [String] = []
        var outboxDropped = 0
        /// Over every line ever written (not only the kept tail), each followed by "\n".
        var digest = SHA256()
        /// The process writers, flushed by `finish()`.
        var sources: [ProcessOutput] = []
    }

    private let state = Mutex(State())
    private let capacity: Int
    /// Applied to every line before it is kept or shipped.
    fileprivate let redactor: Redactor
    /// Lines waiting to be shipped at most; beyond, the oldest are dropped (Redis away, or a runaway step).
    private let outboxLimit: Int

    public init(capacity: Int = 16 * 1024, outboxLimit: Int = 10_000, redactor: Redactor = Redactor([])) {
        self.capacity = capacity
        self.outboxLimit = outboxLimit
        self.redactor = redactor
    }

    /// Appends one line (a trailing newline is not needed); secret values in it are replaced by `***`.
    /// Executors that read a process's output must hand over whole lines, so that a
    /// secret split across two reads is still found.
    public func write(_ line: String) {
        append(redactor.redact(line))
    }

    /// A writer for one process's output, which may cut a long line into pieces of
    /// `ChildProcess.maxLineBytesDefault` bytes: each piece is shown only up to where no secret
    /// can still reach, and the rest is held (per process, so that other writers of the log
    /// never join it) for the next piece or `finish()`.
    public func processOutput() -> ProcessOutput {
        let output = ProcessOutput(log: self)
        state.withLock { $0.sources.append(output) }
        return output
    }

    /// Shows what every process writer still holds of a line that came in pieces (the attempt ended).
    public func finish() {
        for source in state.withLock({ $0.sources }) { source.flush() }
    }

    /// One process's lines into a `StepLog`.
    public final class ProcessOutput: Sendable {
        private let log: StepLog
        private let carry = Mutex("")

        fileprivate init(log: StepLog) { self.log = log }

        public func write(_ line: String) {
            let redactor = log.redactor
            guard !redactor.isEmpty else { return log.append(line) }
            let (shown, rest): (String, String) = carry.withLock { carry in
                let joined = carry + line
                guard line.utf8.count >= ChildProcess.maxLineBytesDefault else {
                    carry = ""
                    return (joined, "")
                }
                let cut = redactor.safeCut(joined)
                carry = String(joined[cut...])
                return (String(joined[..<cut]), carry)
            }
            if !shown.isEmpty || rest.isEmpty { log.append(redactor.redact(shown)) }
        }

        fileprivate func flush() {
            let rest = carry.withLock { carry -> String in
                defer { carry = "" }
                return carry
            }
            if !rest.isEmpty { log.append(log.redactor.redact(rest)) }
        }
    }

    fileprivate func append(_ line: String) {
        state.withLock { state in
            state.digest.update(data: Array(line.utf8))
            state.digest.update(data: [0x0A])
            state.lines.append(line)
            state.bytes += line.utf8.count + 1
            while state.bytes > capacity, !state.lines.isEmpty {
                state.bytes -= state.lines.removeFirst().utf8.count + 1
                state.dropped += 1
            }
            state.outbox.append(line)
            if state.outbox.count > outboxLimit {
                state.outbox.removeFirst(state.outbox.count - outboxLimit)
                state.outboxDropped += 1
            }
        }
    }

    /// The kept tail, with a note of how many earlier lines were dropped.
    public var excerpt: String {
        state.withLock { state in
            let head = state.dropped > 0 ? "[\(state.dropped) earlier lines dropped]\n" : ""
            return head + state.lines.joined(separator: "\n")
        }
    }

    /// The SHA-256 (hex) of the whole log, or nil when nothing was written.
    var sha256: String? {
        state.withLock { state in
            guard !(state.lines.isEmpty && state.dropped == 0) else { return nil }
            return Hex.encode(state.digest.finalize())
        }
    }

    /// Whether anything was ever written (an attempt that logs nothing costs Redis nothing).
    var isEmpty: Bool { state.withLock { $0.lines.isEmpty && $0.dropped == 0 } }

    /// Takes the lines not shipped yet.
    func takeOutbox() -> [String] {
        state.withLock { state in
            var lines = state.outbox
            if state.outboxDropped > 0 {
                lines.insert("[gantry: \(state.outboxDropped) lines were not shipped to the live log]", at: 0)
                state.outboxDropped = 0
            }
            state.outbox.removeAll()
            return lines
        }
    }
}
