import Foundation
import GantryCore
import GantryPostgres
import GantryRedis

/// Where a benchmark's CPU goes: seconds of CPU used by each part of the path
/// while the steps drain, so `gantry bench` can say how many microseconds of
/// CPU a step costs in Postgres, Redis, the workers, the dispatcher and the bench
/// itself (the enqueuer) — the profile behind the steps-per-second figure.
///
/// Processes are read from `/proc` (user + system time of all their threads);
/// Redis reports its own time (`INFO cpu`), so that part works for a remote
/// Redis too. Postgres is counted only when its server runs on this host: every
/// child of the postmaster (backends of any database, WAL writer, checkpointer),
/// so run it on a quiet server. Backends are sampled while they live and the most
/// each was seen using is kept, as they may exit before the end.
final class BenchCPU {
    struct Part: Equatable {
        let name: String
        let seconds: Double
    }

    private let benchPID = getpid()
    private let dispatcherPIDs: [Int32]
    private let workerPIDs: [Int32]
    /// The postmaster's PID, when the Postgres server is on this host.
    private let postmaster: Int32?
    private var start: [Int32: Double] = [:]
    private var latest: [Int32: Double] = [:]
    private var redisStart: Double?
    private var redisEnd: Double?

    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// - Parameter backend: the PID of one of the bench's own Postgres backends (`pg_backend_pid()`).
    init(dispatcherPIDs: [Int32], workerPIDs: [Int32], backend: Int32?) {
        self.dispatcherPIDs = dispatcherPIDs
        self.workerPIDs = workerPIDs
        // The backend's parent is the postmaster; it must be a postgres process on this host.
        if let backend, let stat = Self.stat(backend), Self.isPostgres(backend), Self.isPostgres(stat.parent) {
            postmaster = stat.parent
        } else {
            postmaster = nil
        }
    }

    /// Postgres is measured (its server runs on this host).
    var seesPostgres: Bool { postmaster != nil }

    /// Marks the start of the measured window.
    func begin(redis: RedisConnection) async {
        redisStart = await Self.redisSeconds(redis)
        for (pid, seconds) in snapshot() { start[pid] = seconds }
        latest = start
    }

    /// Reads the processes again; backends that exit before `end` keep what they were last seen using.
    func sample() {
        for (pid, seconds) in snapshot() { latest[pid] = max(latest[pid] ?? 0, seconds) }
    }

    /// Marks the end of the measured window.
    func end(redis: RedisConnection) async {
        sample()
        redisEnd = await Self.redisSeconds(redis)
    }

    /// CPU seconds of each part over the window; a part that could not be read is left out.
    var parts: [Part] {
        func used(_ pids: [Int32]) -> Double {
            pids.reduce(0) { sum, pid in sum + max(0, (latest[pid] ?? 0) - (start[pid] ?? 0)) }
        }
        let known = Set(dispatcherPIDs + workerPIDs + [benchPID])
        var parts: [Part] = []
        if postmaster != nil {
            parts.append(Part(name: "postgres", seconds: used(latest.keys.filter { !known.contains($0) })))
        }
        if let redisStart, let redisEnd { parts.append(Part(name: "redis", seconds: max(0, redisEnd - redisStart))) }
        parts.append(Part(name: "workers", seconds: used(workerPIDs)))
        parts.append(Part(name: "dispatcher", seconds: used(dispatcherPIDs)))
        parts.append(Part(name: "bench", seconds: used([benchPID])))
        return parts
    }

    private func snapshot() -> [Int32: Double] {
        var seconds: [Int32: Double] = [:]
        for pid in dispatcherPIDs + workerPIDs + [benchPID] {
            if let stat = Self.stat(pid) { seconds[pid] = stat.cpu }
        }
        if let postmaster {
            // One read of each process's stat: its parent says whether it is a backend.
            for pid in Self.processes() where pid != postmaster {
                if let stat = Self.stat(pid), stat.parent == postmaster { seconds[pid] = stat.cpu }
            }
        }
        return seconds
    }

    /// User + system seconds and parent of a process, from `/proc/PID/stat`; nil when it is gone.
    /// Split on bytes: the bench reads every process's stat four times a second, and splitting
    /// them into Characters was a fifteenth of the bench's own CPU.
    static func stat(_ pid: Int32) -> (cpu: Double, parent: Int32)? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.utf8.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After "pid (comm)": " state ppid … utime stime …", so word 2 is the parent, 12 and 13 the times.
        let fields = String(text[text.utf8.index(after: close)...]).words(separatedBy: UInt8(ascii: " "), maxSplits: 14)
        guard fields.count > 13, let parent = Int32(fields[2]), let user = Double(fields[12]), let system = Double(fields[13]) else { return nil }
        return ((user + system) / ticksPerSecond, parent)
    }

    private static func isPostgres(_ pid: Int32) -> Bool {
        guard let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) else { return false }
        return name.hasPrefix("postgres")
    }

    /// The PIDs of every process on this host.
    private static func processes() -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap(Int32.init)
    }

    /// Redis's own CPU seconds (`used_cpu_user` + `used_cpu_sys` of `INFO cpu`); nil if it does not say.
    private static func redisSeconds(_ redis: RedisConnection) async -> Double? {
        (try? await redis.serverCPUSeconds()) ?? nil
    }
}
