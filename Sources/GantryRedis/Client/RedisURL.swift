import Foundation

/// Where and how to reach Redis: `redis://[user:password@]host:port/db`.
///
/// `description` never shows the password.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?
    public var database: Int

    public init(host: String = "127.0.0.1", port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses a redis URL; the error names the part that is wrong, never the password.
    public init(parsing text: String) throws(RedisError) {
        guard let components = URLComponents(string: text), components.scheme == "redis" else {
            throw .configuration("the Redis URL must look like redis://[user:password@]host:port/db")
        }
        guard let host = components.host, !host.isEmpty else {
            throw .configuration("the Redis URL has no host; write redis://host:port/db")
        }
        var database = 0
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else {
                throw .configuration("the Redis URL's database '/\(path)' must be a number, e.g. /0")
            }
            database = number
        }
        self.init(
            host: host, port: components.port ?? 6379,
            user: components.percentEncodedUser.flatMap { $0.removingPercentEncoding },
            password: components.percentEncodedPassword.flatMap { $0.removingPercentEncoding },
            database: database
        )
    }

    public var description: String {
        let auth = user.map { "\($0):***@" } ?? (password != nil ? ":***@" : "")
        return "redis://\(auth)\(host):\(port)/\(database)"
    }
}
