internal import CSpawn
import Foundation
import GantryRuntime
import Synchronization

/// A command run as the leader of its own process group, its output read line
/// by line, stopped as a whole.
///
/// Why not `Foundation.Process` or swift-subprocess: a step's command forks
/// (`make -j`, `npm test &`), and its children may keep the output pipe open
/// after the command itself has ended. Here the leader is reaped as soon as it
/// exits, whatever still holds the pipe; the processes it left in its group are
/// then killed (as CI runners clean up orphans), and the pipe is read to its end
/// or for two more seconds at most. Stopping (task cancellation) sends SIGTERM to
/// the whole group, then SIGKILL after the grace period — a command that ignores
/// SIGTERM still ends.
///
/// The child starts with default signal dispositions and no blocked signals (the
/// worker ignores SIGPIPE and handles SIGTERM itself; neither may be inherited),
/// with stdin on /dev/null (or `stdinFile`), stdout and stderr on one pipe (in
/// order, as a CI log shows them) unless stdout goes to `stdoutFile` or
/// `stdoutPipe`, no other descriptor of the worker, and only the environment given.
public struct ChildProcess: Sendable {
    public var executable: String
    public var arguments: [String]
    public var environment: [String: String]
    public var workdir: String?
    /// Between SIGTERM and SIGKILL when the process is stopped.
    public var killGrace: Duration = .seconds(10)
    /// How long the pipe is still read after the leader exited and its group was killed.
    public var drainLimit: Duration = .seconds(2)
    /// Longer lines are handed over in pieces of this many bytes.
    public var maxLineBytes = ChildProcess.maxLineBytesDefault
    /// Output lines longer than this reach the step's log in pieces of this size (`StepLog` keeps a
    /// secret cut between two pieces whole).
    public static let maxLineBytesDefault = 16 * 1024
    /// When set, stdout goes to this file (created or truncated) and only stderr is read as lines:
    /// for commands whose output is data (a scanner's report, a dump), not a log.
    public var stdoutFile: String?
    /// When set, stdout goes to this pipe (`StreamPipe`), read by the caller while the
    /// command runs; only stderr is read as lines.
    public var stdoutPipe: StreamPipe?
    /// When set, stdin reads this file instead of /dev/null.
    public var stdinFile: String?
    /// Kill what the command left in its process group when it exits (the default). Off for
    /// commands whose job is to start something that outlives them (a daemon, a service instance).
    public var killOrphans = true

    public init(
        executable: String, arguments: [String], environment: [String: String], workdir: String? = nil,
        killGrace: Duration = .seconds(10), stdoutFile: String? = nil, stdoutPipe: StreamPipe? = nil, stdinFile: String? = nil
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workdir = workdir
        self.killGrace = killGrace
        self.stdoutFile = stdoutFile
        self.stdoutPipe = stdoutPipe
        self.stdinFile = stdinFile
    }

    /// How the leader ended.
    public enum Ending: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        /// The shell's convention: the exit code, or 128 + the signal number.
        public var code: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exited with code \(code)"
            case .signaled(let signal): "was killed by signal \(ChildProcess.signalName(signal)) (\(signal))"
            }
        }
    }

    /// What happened, beyond how the leader ended.
    public struct Termination: Sendable, Equatable {
        public var ending: Ending
        /// SIGTERM was sent because the task was cancelled.
        public var stopped: Bool
        /// SIGKILL was needed after the grace period.
        public var killedAfterGrace: Bool
        /// Processes of the group were still running when the leader exited, and were killed.
        public var orphansKilled: Bool
    }

    public struct SpawnError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Runs the process to its end. `onLine` is called, in order, on the thread that
    /// reads the output (it must not block). Cancelling the calling task stops the
    /// process group; this returns once the leader is reaped.
    public func run(onLine: @escaping @Sendable (String) -> Void) async throws(SpawnError) -> Termination {
        let control = Control()
        let pid = try spawn(control)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ChildProcess.Termination, Never>) in
                let supervise = Supervision(process: self, pid: pid, readFD: control.readFD, control: control, onLine: onLine)
                let thread = Thread { continuation.resume(returning: supervise.run()) }
                thread.name = "gantry-child-\(pid)"
                thread.start()
            }
        } onCancel: {
            control.requestStop()
        }
    }

    /// Starts the leader; on return the pipe's read end is in `control.readFD`.
    private func spawn(_ control: Control) throws(SpawnError) -> pid_t {
        var fds: [Int32] = [-1, -1]
        let pipeError = cspawn_pipe(&fds)
        guard pipeError == 0 else { throw SpawnError(description: "cannot create a pipe: \(String(cString: strerror(pipeError)))") }
        let devNull = open(stdinFile ?? "/dev/null", O_RDONLY | O_CLOEXEC)
        defer {
            close(fds[1])
            if devNull >= 0 { close(devNull) }
        }
        guard devNull >= 0 else {
            close(fds[0])
            throw SpawnError(description: "cannot open \(stdinFile ?? "/dev/null"): \(String(cString: strerror(errno)))")
        }
        var outFD = fds[1]
        if let stdoutPipe {
            outFD = stdoutPipe.writeFD
        } else if let stdoutFile {
            outFD = open(stdoutFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard outFD >= 0 else {
                close(fds[0])
                throw SpawnError(description: "cannot write \(stdoutFile): \(String(cString: strerror(errno)))")
            }
        }
        // The child has its own copy now; ours must go, or the reader never sees the end.
        defer {
            if let stdoutPipe {
                stdoutPipe.closeWriteEnd()
            } else if outFD != fds[1] {
                close(outFD)
            }
        }
        let argv = CStrings([executable] + arguments)
        let envp = CStrings(environment.keys.sorted().map { "\($0)=\(environment[$0]!)" })
        var pid: pid_t = 0
        let rc = executable.withCString { path in
            if let workdir {
                return workdir.withCString { cspawn_start(&pid, path, argv.pointers, envp.pointers, $0, devNull, outFD, fds[1], 0) }
            }
            return cspawn_start(&pid, path, argv.pointers, envp.pointers, nil, devNull, outFD, fds[1], 0)
        }
        guard rc == 0 else {
            close(fds[0])
            var reason = String(cString: strerror(rc))
            if rc == ENOENT, let workdir, !FileManager.default.fileExists(atPath: workdir) {
                reason = "the working directory \(workdir) does not exist"
            }
            throw SpawnError(description: "cannot start \(executable): \(reason)")
        }
        control.readFD = fds[0]
        return pid
    }

    /// The first path in `PATH` where `name` is an executable file (a name with a
    /// slash is taken as given).
    public static func locate(_ name: String, path: String?) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    public static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGKILL: "SIGKILL"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        case SIGQUIT: "SIGQUIT"
        case SIGABRT: "SIGABRT"
        case SIGSEGV: "SIGSEGV"
        case SIGBUS: "SIGBUS"
        case SIGPIPE: "SIGPIPE"
        case SIGUSR1: "SIGUSR1"
        case SIGUSR2: "SIGUSR2"
        default: "signal \(signal)"
        }
    }
}

/// What the calling task and the supervising thread share.
private final class Control: @unchecked Sendable {
    // Written once before the thread starts, read by it only.
    var readFD: Int32 = -1
    private let stop = Atomic<Bool>(false)

    func requestStop() { stop.store(true, ordering: .releasing) }
    var stopRequested: Bool { stop.load(ordering: .acquiring) }
}

/// The loop of the thread that reads the output, reaps the leader and delivers signals.
private struct Supervision: @unchecked Sendable {
    let process: ChildProcess
    let pid: pid_t
    let readFD: Int32
    let control: Control
    let onLine: @Sendable (String) -> Void

    func run() -> ChildProcess.Termination {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var status: Int32 = 0
        var ended = false
        var eof = false
        var termSentAt: ContinuousClock.Instant?
        var killed = false
        var orphans = false
        var abandonAt: ContinuousClock.Instant?
        let clock = ContinuousClock()
        defer { close(readFD) }

        func emit(_ bytes: ArraySlice<UInt8>) {
            var line = bytes
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            onLine(String(decoding: line, as: UTF8.self))
        }
        func feed(_ count: Int) {
            pending.append(contentsOf: buffer[0..<count])
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                emit(pending[start..<newline])
                start = newline + 1
            }
            while pending.count - start >= process.maxLineBytes {
                emit(pending[start..<start + process.maxLineBytes])
                start += process.maxLineBytes
            }
            pending.removeFirst(start)
        }

        while true {
            if !ended, control.stopRequested, termSentAt == nil {
                termSentAt = clock.now
                kill(-pid, SIGTERM)
            }
            if !ended, !killed, let sent = termSentAt, clock.now - sent >= process.killGrace {
                killed = true
                kill(-pid, SIGKILL)
            }
            if !eof {
                var descriptor = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
                let ready = poll(&descriptor, 1, ended ? 20 : 50)
                if ready > 0 {
                    let count = read(readFD, &buffer, buffer.count)
                    if count > 0 {
                        feed(count)
                    } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                        eof = true
                    }
                }
            } else if !ended {
                usleep(2_000)
            }
            if !ended, cspawn_reap(pid, &status) != 0 {
                ended = true
                // What the command left behind in its group ends with it.
                if process.killOrphans, kill(-pid, 0) == 0 {
                    orphans = true
                    kill(-pid, SIGKILL)
                }
                abandonAt = clock.now + process.drainLimit
            }
            if ended, eof || clock.now >= abandonAt! { break }
        }
        if !pending.isEmpty { emit(pending[...]) }
        let ending: ChildProcess.Ending = cspawn_signaled(status) != 0
            ? .signaled(cspawn_signal(status)) : .exited(cspawn_exit_code(status))
        return ChildProcess.Termination(ending: ending, stopped: termSentAt != nil, killedAfterGrace: killed, orphansKilled: orphans)
    }
}

/// A NULL-terminated array of C strings that lives as long as this value.
private final class CStrings {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointers = .allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() { pointers[index] = strdup(string) }
        pointers[strings.count] = nil
    }

    deinit {
        for index in 0..<count { free(pointers[index]) }
        pointers.deallocate()
    }
}
