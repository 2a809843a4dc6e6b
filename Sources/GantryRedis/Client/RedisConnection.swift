internal import CHiredis
import GantryCore
import GantryRuntime
import Synchronization

/// One connection to Redis through hiredis, on a thread of its own.
///
/// hiredis blocks and its context is not thread-safe, so every call runs on
/// this actor's dedicated thread (never on the cooperative pool) and one
/// context is used by one thread only. A broken connection is freed at once
/// and re-established on the next command. Cancelling the calling task shuts
/// the socket down, which wakes a blocked read promptly.
public actor RedisConnection {
    /// How the connection behaves.
    public struct Configuration: Sendable {
        /// Connect timeout.
        public var connectTimeout: Duration
        /// Socket read/write timeout; keep it above any `BLOCK` this connection issues.
        public var commandTimeout: Duration
        /// The client name shown by `CLIENT LIST`.
        public var clientName: String?

        public init(connectTimeout: Duration = .seconds(3), commandTimeout: Duration = .seconds(10), clientName: String? = nil) {
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.clientName = clientName
        }
    }

    public let url: RedisURL
    public let configuration: Configuration
    private let executor: DedicatedThreadExecutor
    private var context: UnsafeMutablePointer<redisContext>?
    /// The socket of the live context, readable from any thread for `interrupt()`.
    private let socket = Mutex<Int32>(-1)

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    public init(url: RedisURL, configuration: Configuration = .init()) {
        self.url = url
        self.configuration = configuration
        self.executor = DedicatedThreadExecutor(name: "gantry-redis")
    }

    isolated deinit {
        if let context { redisFree(context) }
        executor.shutdown()
    }

    // MARK: Commands

    /// Sends one command and returns its reply; an error reply comes back as `.error`.
    public nonisolated func send(_ arguments: [String]) async throws(RedisError) -> RedisValue {
        try await interruptible([arguments])[0]
    }

    /// Sends one command and throws if Redis answers with an error reply.
    @discardableResult
    public nonisolated func command(_ arguments: [String]) async throws(RedisError) -> RedisValue {
        try await send(arguments).orThrow()
    }

    /// Sends several commands in one write and reads all replies (pipelining):
    /// one round trip instead of `commands.count`. Error replies stay in place.
    public nonisolated func pipeline(_ commands: [[String]]) async throws(RedisError) -> [RedisValue] {
        if commands.isEmpty { return [] }
        return try await interruptible(commands)
    }

    /// Shuts the socket down so a blocked call returns; the connection reconnects on next use.
    public nonisolated func interrupt() {
        socket.withLock { fd in
            guard fd >= 0 else { return }
            chiredis_shutdown(fd)
            // Even when no call is in progress (a caller cancelled before its command went
            // out): the next call must not write to the shut-down socket.
            fd = RedisConnection.interrupted
        }
    }

    /// The value of `socket` once `interrupt()` has shut the live context's socket down.
    private static let interrupted: Int32 = -2
    /// How much of a connection's read buffer hiredis keeps between replies.
    private static let readerBufferKept = 1 << 20

    /// Closes the connection now.
    public func close() {
        disconnect()
    }

    // MARK: Internals

    /// Runs a round trip on the connection's thread; cancelling the caller shuts the socket down.
    ///
    /// Nonisolated on purpose: the round trip is entered through a real actor call
    /// (`exchange`), so callers sharing the connection run one after another. (A
    /// closure run inside `withTaskCancellationHandler` from an isolated method was
    /// seen running off the actor, and concurrent callers then read each other's replies.)
    private nonisolated func interruptible(_ commands: [[String]]) async throws(RedisError) -> [RedisValue] {
        let result: Result<[RedisValue], RedisError> = await withTaskCancellationHandler {
            await self.exchange(commands)
        } onCancel: {
            self.interrupt()
        }
        return try result.get()
    }

    private func exchange(_ commands: [[String]]) -> Result<[RedisValue], RedisError> {
        if Task.isCancelled { return .failure(.io("canceled")) }
        do throws(RedisError) { return .success(try roundTrip(commands)) } catch { return .failure(error) }
    }

    private func roundTrip(_ commands: [[String]]) throws(RedisError) -> [RedisValue] {
        let context = try connected()
        for arguments in commands {
            try append(arguments, to: context)
        }
        var replies: [RedisValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                let message = errorText(context)
                disconnect()
                throw .io(message)
            }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            defer { freeReplyObject(reply) }
            replies.append(Self.value(of: reply))
        }
        return replies
    }

    private func append(_ arguments: [String], to context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        // One buffer for all arguments (binary-safe with explicit lengths), plus a
        // trailing byte so the buffer is never empty.
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            lengths.append(argument.utf8.count)
            bytes.append(contentsOf: argument.utf8)
        }
        bytes.append(0)
        let status: Int32 = bytes.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!)
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(arguments.count)
            var offset = 0
            for length in lengths {
                pointers.append(base.advanced(by: offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvlen in
                    redisAppendCommandArgv(context, Int32(arguments.count), argv.baseAddress, argvlen.baseAddress)
                }
            }
        }
        guard status == REDIS_OK else {
            let message = errorText(context)
            disconnect()
            throw .io(message)
        }
    }

    private func connected() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if let context {
            guard socket.withLock({ $0 }) == RedisConnection.interrupted else { return context }
            disconnect()
        }
        guard let fresh = chiredis_connect(url.host, Int32(url.port), Int(configuration.connectTimeout.milliseconds)) else {
            throw .connection("\(url.host):\(url.port): out of memory")
        }
        if fresh.pointee.err != 0 {
            let message = errorText(fresh)
            redisFree(fresh)
            throw .connection("\(url.host):\(url.port): \(message)")
        }
        chiredis_set_timeout(fresh, Int(configuration.commandTimeout.milliseconds))
        // hiredis frees its read buffer whenever it is empty and more than 16 KB unused, so every
        // reply above that (a worker's XREADGROUP of 64 jobs is ~40 KB) grew a new buffer by
        // doubling reallocations and freed it again. Keep up to 1 MB between replies.
        fresh.pointee.reader.pointee.maxbuf = RedisConnection.readerBufferKept
        context = fresh
        socket.withLock { $0 = fresh.pointee.fd }
        do throws(RedisError) {
            var setup: [[String]] = []
            if let password = url.password {
                setup.append(url.user.map { ["AUTH", $0, password] } ?? ["AUTH", password])
            }
            if url.database != 0 { setup.append(["SELECT", String(url.database)]) }
            if let name = configuration.clientName { setup.append(["CLIENT", "SETNAME", name]) }
            for reply in try roundTrip(setup) {
                if case .error(let message) = reply {
                    // Never echo the password; Redis's own message does not contain it.
                    throw RedisError.connection("\(url.host):\(url.port): \(message)")
                }
            }
        } catch {
            disconnect()
            throw error
        }
        return fresh
    }

    private func disconnect() {
        socket.withLock { $0 = -1 }
        if let context {
            redisFree(context)
            self.context = nil
        }
    }

    private func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            let text = String(decoding: bytes[..<end], as: UTF8.self)
            return text.isEmpty ? "connection closed" : text
        }
    }

    private static func value(of reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .string(text(r.str, r.len))
        case REDIS_REPLY_STATUS:
            return .status(text(r.str, r.len))
        case REDIS_REPLY_ERROR:
            return .error(text(r.str, r.len))
        case REDIS_REPLY_INTEGER:
            return .integer(r.integer)
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(r.elements)
            for index in 0..<r.elements {
                if let element = chiredis_element(reply, index) {
                    items.append(value(of: element))
                } else {
                    items.append(.null)
                }
            }
            return .array(items)
        default:
            return .error("unsupported reply type \(r.type)")
        }
    }

    private static func text(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }
}
