import Crypto
import GantryCore
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
        /// The unredacted end of a line a process wrote longer than `ChildProcess.maxLineBytes`,
        /// which came in pieces: held until the next piece, so that a secret cut in two is
        /// still found whole.
        var carry = ""
    }

    private let state = Mutex(State())
    private let capacity: Int
    /// Applied to every line before it is kept or shipped.
    private let redactor: Redactor
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
        // A piece of a longer line (a process's output is cut at maxLineBytes): redact and show
        // what no secret can still reach, keep the rest for the next piece.
        if !redactor.isEmpty {
            let joined = state.withLock { state -> String in
                defer { state.carry = "" }
                return state.carry + line
            }
            if line.utf8.count >= ChildProcess.maxLineBytesDefault {
                let cut = redactor.safeCut(joined)
                state.withLock { $0.carry = String(joined[cut...]) }
                if cut > joined.startIndex { append(redactor.redact(String(joined[..<cut]))) }
                return
            }
            append(redactor.redact(joined))
            return
        }
        append(line)
    }

    /// Shows what is still held of a line that came in pieces (the attempt ended).
    public func finish() {
        let rest = state.withLock { state -> String in
            defer { state.carry = "" }
            return state.carry
        }
        if !rest.isEmpty { append(redactor.redact(rest)) }
    }

    private func append(_ line: String) {
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
