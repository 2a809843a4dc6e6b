import Foundation
import GantryCore
@testable import GantryWorkers
import Testing

/// Nothing a worker does may hold a thread of Swift's cooperative pool (two threads on a
/// two-core machine): blocking C calls run on threads of their own, and waits are
/// `Task.sleep`. Here a pinger measures how late the pool wakes it while the deploy
/// target stops instances that ignore SIGTERM — what used to `usleep` on the pool for up
/// to five seconds a call.
@Suite struct CooperativePoolTests {
    @Test func stoppingInstancesThatIgnoreSIGTERMLeavesThePoolFree() async throws {
        // More stops at once than the pool has threads, each waiting ~3 s for its instance.
        let instances = try (0..<max(4, 2 * ProcessInfo.processInfo.activeProcessorCount)).map { index in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "trap '' TERM; sleep 3"]
            try process.run()
            return (process, LocalDeployment.Instance(port: 40_000 + index, pid: process.processIdentifier))
        }
        let started = ContinuousClock.now
        let late = await withTaskGroup(of: Duration?.self) { group in
            // The pinger: how late, at worst, a 10 ms sleep is woken, until it is canceled.
            group.addTask {
                var worst = Duration.zero
                while !Task.isCancelled {
                    let asked = ContinuousClock.now
                    try? await Task.sleep(for: .milliseconds(10))
                    worst = max(worst, ContinuousClock.now - asked - .milliseconds(10))
                }
                return worst
            }
            for (_, instance) in instances {
                group.addTask {
                    await LocalTarget.stop([instance])
                    return nil
                }
            }
            var stops = 0
            var worst = Duration.zero
            while let result = await group.next() {
                if let result { worst = result } else { stops += 1 }
                if stops == instances.count { group.cancelAll() }
            }
            return worst
        }
        let took = ContinuousClock.now - started
        for (process, _) in instances { process.waitUntilExit() }
        // The stops did wait for their instances (they ignored SIGTERM for 3 s)…
        #expect(took >= .milliseconds(2_900), "the stops returned after \(took)")
        // …without taking the pool from the pinger: a blocked pool wakes it ~3 s late; a loaded
        // machine running the whole suite beside it, a few hundred milliseconds.
        #expect(late < .milliseconds(1_500), "the pool woke a 10 ms sleep \(late) late while instances were stopped")
    }
}
