/// An error from Postgres or libpq. `description` is one line and never contains
/// the connection string or a password.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    enum Code: Sendable {
        case configuration
        case connection
        case server
        case protocolViolation
    }

    let code: Code
    /// The SQLSTATE, when the server sent one (e.g. `23505` unique violation).
    public let sqlState: String?
    public let message: String

    static func configuration(_ message: String) -> PostgresError { .init(code: .configuration, sqlState: nil, message: message) }
    static func connection(_ message: String) -> PostgresError { .init(code: .connection, sqlState: nil, message: message) }
    static func server(_ message: String, sqlState: String?) -> PostgresError { .init(code: .server, sqlState: sqlState, message: message) }
    static func protocolViolation(_ message: String) -> PostgresError { .init(code: .protocolViolation, sqlState: nil, message: message) }

    /// The connection is gone (server down, network, admin shutdown): retry after reconnecting.
    public var isConnectionFailure: Bool {
        if code == .connection { return true }
        guard let sqlState else { return false }
        // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now.
        return sqlState.hasPrefix("08") || sqlState == "57P01" || sqlState == "57P02" || sqlState == "57P03"
    }

    /// SQLSTATE 23505: a row would break a unique index.
    public static let uniqueViolation = "23505"

    public var description: String {
        switch code {
        case .configuration: "postgres configuration: \(message)"
        case .connection: "cannot reach Postgres: \(message)"
        case .server: "postgres error\(sqlState.map { " \($0)" } ?? ""): \(message)"
        case .protocolViolation: "unexpected Postgres answer: \(message)"
        }
    }
}
