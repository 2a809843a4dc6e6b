internal import CSpawn
import Foundation
import GantryRuntime

/// A pipe a command writes its stdout to while the caller reads it, a block at a
/// time, on a thread of its own (the reads block): how a backup streams a
/// `tar` or `pg_dump` to S3 without holding it, or a file of it, anywhere.
public final class StreamPipe: @unchecked Sendable {
    public let readFD: Int32
    public private(set) var writeFD: Int32
    private let reader: PipeReader

    public init() throws(ChildProcess.SpawnError) {
        var fds: [Int32] = [-1, -1]
        let error = cspawn_pipe(&fds)
        guard error == 0 else {
            throw ChildProcess.SpawnError(description: "cannot create a pipe: \(String(cString: strerror(error)))")
        }
        readFD = fds[0]
        writeFD = fds[1]
        reader = PipeReader(fd: fds[0])
    }

    public func closeWriteEnd() {
        if writeFD >= 0 { close(writeFD) }
        writeFD = -1
    }

    /// Up to `count` bytes: fewer only at the end of the stream (empty once it is over).
    public func read(upTo count: Int) async -> [UInt8] {
        await reader.read(upTo: count)
    }

    deinit {
        closeWriteEnd()
        close(readFD)
    }
}

/// Blocking reads of one descriptor, on a dedicated thread.
private actor PipeReader {
    private let fd: Int32
    private let executor = DedicatedThreadExecutor(name: "gantry-pipe")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    init(fd: Int32) {
        self.fd = fd
    }

    func read(upTo count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, count - filled) }
            if n > 0 {
                filled += n
            } else if n < 0, errno == EINTR {
                continue
            } else {
                break
            }
        }
        out.removeLast(count - filled)
        return out
    }

    deinit {
        executor.shutdown()
    }
}
