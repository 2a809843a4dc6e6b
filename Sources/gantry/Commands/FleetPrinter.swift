import Foundation
import GantryAPI
import GantryCore

/// Prints the fleet and the queues for people: a line each, aligned, and under it what is
/// wrong (`!`) and what a worker runs.
enum FleetPrinter {
    static func fleet(_ fleet: Components.Schemas.Fleet) -> String {
        let live = fleet.workers.filter { $0.state == .live }.count
        let draining = fleet.workers.filter { $0.state == .draining }.count
        let stopped = fleet.workers.count - live - draining
        var lines = ["\(fleet.workers.count) workers: \(live) live, \(draining) draining, \(stopped) stopped  (\(MillisecondDates.text(fleet.checkedAt)))"]
        guard !fleet.workers.isEmpty else {
            return (lines + ["no worker has a heartbeat: start one (gantry worker --kind KIND)"]).joined(separator: "\n")
        }
        var rows = [["WORKER", "STATE", "QUEUES", "IN FLIGHT", "HEARTBEAT", "RELEASE", "HOST", "PID", "UP"]]
        for worker in fleet.workers {
            let up = worker.startedAt.map { age(ms: Int64(fleet.checkedAt.timeIntervalSince($0) * 1_000)) } ?? "-"
            rows.append([
                worker.name, worker.drainRequested && worker.state == .live ? "draining" : worker.state.rawValue,
                worker.queues.joined(separator: ","), "\(worker.inFlight)/\(worker.concurrency)", age(ms: Int64(worker.heartbeatAgeMs)) + " ago",
                worker.version ?? "-", worker.host ?? "-", worker.pid.map(String.init) ?? "-", up,
            ])
        }
        let table = aligned(rows)
        lines.append(table[0])
        for (index, worker) in fleet.workers.enumerated() {
            lines.append(table[index + 1])
            if let problem = worker.problem { lines.append("    ! \(problem)") }
            let shown = worker.running.prefix(3).map { "\($0.attempt) for \(age(ms: Int64(fleet.checkedAt.timeIntervalSince($0.since) * 1_000)))" }
            if !shown.isEmpty {
                let more = worker.running.count > shown.count ? ", and \(worker.running.count - shown.count) more" : ""
                lines.append("    running " + shown.joined(separator: ", ") + more)
            }
        }
        return lines.joined(separator: "\n")
    }

    static func queues(_ list: Components.Schemas.QueueList) -> String {
        let troubled = list.queues.filter { !$0.problems.isEmpty }.count
        var lines = ["\(list.queues.count) queues, \(troubled) with problems  (\(MillisecondDates.text(list.checkedAt)))"]
        guard !list.queues.isEmpty else { return (lines + ["no queue yet: submit a run, or start a worker"]).joined(separator: "\n") }
        var rows = [["QUEUE", "WAITING", "LEASED", "DELAYED", "DEAD", "OLDEST", "TAKEN/MIN", "WORKERS", "STATE"]]
        for queue in list.queues {
            rows.append([
                queue.queue, "\(queue.waiting)", "\(queue.leased)", "\(queue.delayed)", "\(queue.dead)",
                queue.oldestWaitingAgeMs.map { age(ms: Int64($0)) } ?? "-",
                queue.takenPerMinute.map { String(format: "%.0f", $0) } ?? "-",
                queue.drainingWorkers > 0 ? "\(queue.liveWorkers) (\(queue.drainingWorkers) draining)" : "\(queue.liveWorkers)",
                queue.paused ? "PAUSED" + (queue.pausedBy.map { " by \($0)" } ?? "") : "running",
            ])
        }
        let table = aligned(rows)
        lines.append(table[0])
        for (index, queue) in list.queues.enumerated() {
            lines.append(table[index + 1])
            if let reason = queue.pauseReason { lines.append("    paused: \(reason)") }
            for problem in queue.problems { lines.append("    ! \(problem)") }
        }
        return lines.joined(separator: "\n")
    }

    /// `850ms`, `12s`, `3m`, `2h`, `4d`.
    static func age(ms: Int64) -> String {
        switch max(0, ms) {
        case ..<1_000: "\(max(0, ms))ms"
        case ..<120_000: "\(ms / 1_000)s"
        case ..<7_200_000: "\(ms / 60_000)m"
        case ..<172_800_000: "\(ms / 3_600_000)h"
        default: "\(ms / 86_400_000)d"
        }
    }

    /// Rows padded into columns two spaces apart.
    static func aligned(_ rows: [[String]]) -> [String] {
        let widths = rows.reduce(into: [Int](repeating: 0, count: rows.first?.count ?? 0)) { widths, row in
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}
