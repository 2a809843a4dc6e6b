/// An error talking to Redis. `description` is one line and never contains a password.
public struct RedisError: Error, Sendable, CustomStringConvertible, Equatable {
    enum Code: Sendable, Equatable {
        case configuration
        case connection
        case io
        case reply
        case protocolViolation
    }

    let code: Code
    public let message: String

    public static func configuration(_ message: String) -> RedisError { RedisError(code: .configuration, message: message) }
    static func connection(_ message: String) -> RedisError { RedisError(code: .connection, message: message) }
    static func io(_ message: String) -> RedisError { RedisError(code: .io, message: message) }
    static func reply(_ message: String) -> RedisError { RedisError(code: .reply, message: message) }
    static func protocolViolation(_ message: String) -> RedisError { RedisError(code: .protocolViolation, message: message) }

    /// Redis answered with an error reply (e.g. `NOGROUP`, `WRONGTYPE`); the connection is fine.
    public var isErrorReply: Bool { code == .reply }
    /// The connection failed or broke; the next command reconnects.
    public var isConnectionFailure: Bool { code == .connection || code == .io }

    public var description: String {
        switch code {
        case .configuration: "redis configuration: \(message)"
        case .connection: "cannot connect to Redis: \(message)"
        case .io: "redis connection broken: \(message)"
        case .reply: "redis error: \(message)"
        case .protocolViolation: "unexpected Redis reply: \(message)"
        }
    }
}
