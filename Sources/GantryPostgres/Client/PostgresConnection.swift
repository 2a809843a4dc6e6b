internal import CLibPQ
import GantryCore
import GantryRuntime
import Glibc
import Synchronization

/// One libpq connection on a thread of its own.
///
/// libpq blocks, so every call runs on this actor's dedicated thread, never on
/// the cooperative pool. A connection that breaks is closed and re-opened on the
/// next call; the caller decides whether to retry the statement. Cancelling the
/// calling task sends a cancel request (`PQcancel`) for the running statement.
public actor PostgresConnection {
    public let url: PostgresURL
    private let applicationName: String
    private let executor: DedicatedThreadExecutor
    private var connection: OpaquePointer?
    /// The cancel handle of the live connection, usable from any thread.
    private let cancelHandle = Mutex<CancelHandle?>(nil)

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    /// Creates the connection object; it connects on first use.
    public init(url: PostgresURL, applicationName: String = "gantry") {
        self.url = url
        self.applicationName = applicationName
        self.executor = DedicatedThreadExecutor(name: "gantry-pq")
    }

    isolated deinit {
        disconnect()
        executor.shutdown()
    }

    // MARK: Statements

    /// Runs one statement with text parameters (`$1`, `$2` …; `nil` is SQL NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresRows {
        let conn = try connected()
        if let name = PreparedStatements.name(for: sql) {
            if !PreparedStatements.isPrepared(name, on: conn) {
                do throws(PostgresError) {
                    try consume(PQprepare(conn, name, sql, Int32(parameters.count), nil), conn)
                } catch where error.sqlState == "42P05" {
                    // Already prepared on this session: nothing to do.
                }
                PreparedStatements.markPrepared(name, on: conn)
            }
            let result: OpaquePointer? = withCStrings(parameters) { values in
                PQexecPrepared(conn, name, Int32(parameters.count), values, nil, nil, 0)
            }
            return try consume(result, conn)
        }
        let result: OpaquePointer? = withCStrings(parameters) { values in
            PQexecParams(conn, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        return try consume(result, conn)
    }

    /// Sends several statements in one round trip (libpq's pipeline mode) and returns
    /// each one's rows, in order. The server runs them one after another, each with
    /// its own snapshot, inside the caller's transaction if one is open. The first
    /// failure is thrown; the statements after it are not run.
    public func pipeline(_ statements: [(sql: String, parameters: [String?])]) throws(PostgresError) -> [PostgresRows] {
        if statements.count == 1 { return [try query(statements[0].sql, statements[0].parameters)] }
        let conn = try connected()
        guard PQenterPipelineMode(conn) == 1 else { throw .protocolViolation("libpq refused pipeline mode") }
        // Registered statements not yet prepared on this connection are prepared in the same
        // round trip, just before their first use; each preparation answers with a result too.
        var preparing: Set<String> = []
        var answers: [String?] = []
        for statement in statements {
            let sent: Int32
            if let name = PreparedStatements.name(for: statement.sql) {
                if !PreparedStatements.isPrepared(name, on: conn), !preparing.contains(name) {
                    guard PQsendPrepare(conn, name, statement.sql, Int32(statement.parameters.count), nil) == 1 else { try abandon(conn) }
                    preparing.insert(name)
                    answers.append(name)
                }
                sent = withCStrings(statement.parameters) { values in
                    PQsendQueryPrepared(conn, name, Int32(statement.parameters.count), values, nil, nil, 0)
                }
            } else {
                sent = withCStrings(statement.parameters) { values in
                    PQsendQueryParams(conn, statement.sql, Int32(statement.parameters.count), nil, values, nil, nil, 0)
                }
            }
            guard sent == 1 else { try abandon(conn) }
            answers.append(nil)
        }
        guard PQpipelineSync(conn) == 1 else { try abandon(conn) }
        var results: [PostgresRows] = []
        var failure: PostgresError?
        for preparation in answers {
            guard let result = PQgetResult(conn) else { try abandon(conn) }
            if let preparation {
                // The answer to a preparation: remembered when it worked, its error reported like a statement's.
                if PQresultStatus(result) == PGRES_COMMAND_OK {
                    PreparedStatements.markPrepared(preparation, on: conn)
                    PQclear(result)
                } else if PQresultStatus(result) == PGRES_PIPELINE_ABORTED || failure != nil {
                    PQclear(result)
                } else {
                    do throws(PostgresError) { try consume(result, conn) } catch where error.sqlState == "42P05" {
                        PreparedStatements.markPrepared(preparation, on: conn)
                    } catch {
                        failure = error
                        if connection == nil { throw error }
                    }
                }
                while let extra = PQgetResult(conn) { PQclear(extra) }
                continue
            }
            if PQresultStatus(result) == PGRES_PIPELINE_ABORTED {
                PQclear(result)
            } else if failure == nil {
                do throws(PostgresError) { results.append(try consume(result, conn)) } catch {
                    failure = error
                    // A lost connection has been closed by `consume`: nothing more to read.
                    if connection == nil { throw error }
                }
            } else {
                PQclear(result)
            }
            // Each statement's results end with a NULL.
            while let extra = PQgetResult(conn) { PQclear(extra) }
        }
        // The sync point, then the connection is idle again.
        while let result = PQgetResult(conn) {
            let status = PQresultStatus(result)
            PQclear(result)
            if status == PGRES_PIPELINE_SYNC { break }
        }
        PQexitPipelineMode(conn)
        if let failure { throw failure }
        return results
    }

    /// An exchange (a pipeline, a COPY) that could not be sent or read: the connection is in
    /// an unknown state, so it is closed.
    private func abandon(_ conn: OpaquePointer) throws(PostgresError) -> Never {
        let message = Self.firstLine(PQerrorMessage(conn))
        disconnect()
        throw .connection(message)
    }

    /// Runs `COPY <table> (<columns>) FROM STDIN` with these rows and returns how many went in.
    /// Inside the caller's transaction if one is open; a bad row fails the whole statement.
    @discardableResult
    func copy(into table: String, columns: [String], _ rows: PostgresCopyRows) throws(PostgresError) -> Int {
        guard rows.count > 0 else { return 0 }
        let conn = try connected()
        guard let start = PQexec(conn, "COPY \(table) (\(columns.joined(separator: ", "))) FROM STDIN") else {
            try abandon(conn)
        }
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            try consume(start, conn)
            throw .protocolViolation("COPY into \(table) did not start")
        }
        PQclear(start)
        let sent = rows.bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                PQputCopyData(conn, $0, Int32(buffer.count))
            }
        }
        guard sent == 1, PQputCopyEnd(conn, nil) == 1 else { try abandon(conn) }
        let end = PQgetResult(conn)
        if end != nil { while let extra = PQgetResult(conn) { PQclear(extra) } }
        return try consume(end, conn).affected
    }

    /// Runs a script of statements without parameters (migrations).
    public func execute(_ sql: String) throws(PostgresError) {
        let conn = try connected()
        try consume(PQexec(conn, sql), conn)
    }

    /// Awaitable form of `query` for callers outside the actor, cancellable.
    ///
    /// Nonisolated on purpose: the statement is entered through a real actor call,
    /// so callers sharing the connection run one after another (a closure inside
    /// `withTaskCancellationHandler` in an isolated method can run off the actor).
    @discardableResult
    public nonisolated func run(_ sql: String, _ parameters: [String?] = []) async throws(PostgresError) -> PostgresRows {
        let result: Result<PostgresRows, PostgresError> = await withTaskCancellationHandler {
            await self.queryResult(sql, parameters)
        } onCancel: {
            self.cancel()
        }
        return try result.get()
    }

    /// Awaitable form of `pipeline` for callers outside the actor, cancellable.
    public nonisolated func runPipeline(_ statements: [(sql: String, parameters: [String?])]) async throws(PostgresError) -> [PostgresRows] {
        let result: Result<[PostgresRows], PostgresError> = await withTaskCancellationHandler {
            await self.pipelineResult(statements)
        } onCancel: {
            self.cancel()
        }
        return try result.get()
    }

    private func pipelineResult(_ statements: [(sql: String, parameters: [String?])]) -> Result<[PostgresRows], PostgresError> {
        do throws(PostgresError) { return .success(try pipeline(statements)) } catch { return .failure(error) }
    }

    private func queryResult(_ sql: String, _ parameters: [String?]) -> Result<PostgresRows, PostgresError> {
        do throws(PostgresError) { return .success(try query(sql, parameters)) } catch { return .failure(error) }
    }

    /// Runs `body` inside `BEGIN … COMMIT` on this connection; any error rolls back.
    ///
    /// The body is synchronous and isolated to the connection, so nothing else
    /// can interleave statements in the transaction.
    public func transaction<T: Sendable>(_ body: (isolated PostgresConnection) throws(PostgresError) -> T) throws(PostgresError) -> T {
        try query("BEGIN")
        do {
            let value = try body(self)
            try query("COMMIT")
            return value
        } catch {
            if connection != nil { _ = try? query("ROLLBACK") }
            throw error
        }
    }

    /// Asks the server to cancel the statement running now, from any thread.
    public nonisolated func cancel() {
        cancelHandle.withLock { handle in
            guard let handle else { return }
            var buffer = [CChar](repeating: 0, count: 256)
            _ = PQcancel(handle.pointer, &buffer, Int32(buffer.count))
        }
    }

    /// Closes the connection now; the next call reconnects.
    public func close() {
        disconnect()
    }

    // MARK: Internals

    private func connected() throws(PostgresError) -> OpaquePointer {
        if let connection, PQstatus(connection) == CONNECTION_OK { return connection }
        disconnect()
        let keywords = ["dbname", "application_name", "connect_timeout"]
        let values = [url.connectionString, applicationName, "5"]
        let conn: OpaquePointer? = withCStrings(keywords) { keys in
            withCStrings(values) { vals in
                // expand_dbname = 1: the URL in "dbname" supplies host, user, password…
                PQconnectdbParams(keys, vals, 1)
            }
        }
        guard let conn else { throw .connection("out of memory") }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = Self.firstLine(PQerrorMessage(conn))
            PQfinish(conn)
            throw .connection(message)
        }
        cpq_silence_notices(conn)
        connection = conn
        if let cancel = PQgetCancel(conn) {
            cancelHandle.withLock { $0 = CancelHandle(pointer: cancel) }
        }
        return conn
    }

    private func disconnect() {
        cancelHandle.withLock { handle in
            if let handle { PQfreeCancel(handle.pointer) }
            handle = nil
        }
        if let connection {
            PreparedStatements.forget(connection)
            PQfinish(connection)
            self.connection = nil
        }
    }

    @discardableResult
    private func consume(_ result: OpaquePointer?, _ conn: OpaquePointer) throws(PostgresError) -> PostgresRows {
        guard let result else {
            let message = Self.firstLine(PQerrorMessage(conn))
            if PQstatus(conn) != CONNECTION_OK { disconnect() }
            throw .connection(message)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(columns: [], rows: [], affected: Int(String(cString: PQcmdTuples(result))) ?? 0)
        case PGRES_TUPLES_OK:
            return Self.copyRows(result)
        default:
            let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
            let message = primary ?? Self.firstLine(PQresultErrorMessage(result))
            if PQstatus(conn) != CONNECTION_OK {
                // The server went away mid-statement ("server closed the connection unexpectedly").
                disconnect()
                throw .connection(message)
            }
            let error = PostgresError.server(message, sqlState: sqlState)
            if error.isConnectionFailure { disconnect() }
            throw error
        }
    }

    private static func copyRows(_ result: OpaquePointer) -> PostgresRows {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [String] = []
        columns.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            columns.append(String(cString: PQfname(result, Int32(column))))
        }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) != 0 {
                    values.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(row), Int32(column)))
                    let pointer = PQgetvalue(result, Int32(row), Int32(column))!
                    values.append(pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
                    })
                }
            }
            rows.append(values)
        }
        return PostgresRows(columns: columns, rows: rows, affected: rowCount)
    }

    private static func firstLine(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "unknown error" }
        let text = String(cString: pointer)
        let line = text.split(separator: "\n").first.map(String.init) ?? text
        return line.isEmpty ? "connection closed" : line
    }
}

/// A `PGcancel*`; `PQcancel` is documented as safe to call from another thread.
/// `@unchecked Sendable`: it is only used under the owning connection's mutex.
private struct CancelHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// Calls `body` with a C array of C strings (NULL for nil) that live only during the call.
private func withCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    var storage: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { for pointer in storage { free(pointer) } }
    return storage.withUnsafeMutableBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(buffer.count, 1)) { body($0) }
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    var terminated: [String?] = strings
    terminated.append(nil)
    return withCStrings(terminated, body)
}
