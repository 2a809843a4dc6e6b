import Synchronization

/// A step's log: lines an executor writes, of which the last `capacity` bytes
/// are kept for the attempt record.
public final class StepLog: Sendable {
    private let state: Mutex<(lines: [String], bytes: Int, dropped: Int)>
    private let capacity: Int

    public init(capacity: Int = 16 * 1024) {
        self.capacity = capacity
        self.state = Mutex(([], 0, 0))
    }

    /// Appends one line (a trailing newline is not needed).
    public func write(_ line: String) {
        state.withLock { state in
            state.lines.append(line)
            state.bytes += line.utf8.count + 1
            while state.bytes > capacity, !state.lines.isEmpty {
                state.bytes -= state.lines.removeFirst().utf8.count + 1
                state.dropped += 1
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
}
