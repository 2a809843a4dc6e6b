import Synchronization

/// A multi-producer, single-consumer queue whose consumer takes everything
/// waiting at once: the recorder turns whatever finished meanwhile into one
/// batch (group commit), without a timer.
final class Mailbox<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var closed = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func put(_ item: Item) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.items.append(item)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Ends the mailbox: `take` returns what is left, then `nil`.
    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits for at least one item and returns up to `max` of them; `nil` once closed and empty.
    func take(max: Int) async -> [Item]? {
        while true {
            let batch: [Item]? = state.withLock { state in
                guard !state.items.isEmpty else { return state.closed ? [] : nil }
                guard state.items.count > max else {
                    // All of them (the usual case): hand the array over instead of copying it and
                    // shifting what is left, and size the next one once.
                    let batch = state.items
                    state.items = []
                    state.items.reserveCapacity(batch.count)
                    return batch
                }
                let batch = Array(state.items.prefix(max))
                state.items.removeFirst(max)
                return batch
            }
            if let batch { return batch.isEmpty ? nil : batch }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if !state.items.isEmpty || state.closed { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }
}

/// Counts free execution slots; the reader waits here when the worker is full.
final class Slots: Sendable {
    private struct State {
        var free: Int
        var waiter: (need: Int, continuation: CheckedContinuation<Void, Never>)?
    }

    private let state: Mutex<State>
    let capacity: Int

    init(_ capacity: Int) {
        self.capacity = capacity
        self.state = Mutex(State(free: capacity))
    }

    var free: Int { state.withLock { $0.free } }
    var used: Int { capacity - free }

    func take(_ count: Int) {
        state.withLock { $0.free -= count }
    }

    func release(_ count: Int = 1) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.free += count
            guard let waiter = state.waiter, state.free >= waiter.need else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    /// Waits until at least `count` slots are free.
    func wait(forFree count: Int) async {
        let need = Swift.min(count, capacity)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.free >= need { return true }
                state.waiter = (need, continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Wakes a waiter whatever the count (shutdown).
    func wakeAll() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume()
    }
}
