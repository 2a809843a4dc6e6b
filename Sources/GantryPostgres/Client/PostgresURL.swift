import Foundation

/// A libpq connection URL (`postgresql://user:password@host:port/db?…`), kept
/// whole for libpq and shown only without its password.
public struct PostgresURL: Sendable, CustomStringConvertible {
    /// The text handed to libpq.
    let connectionString: String
    private let redacted: String

    public init(parsing text: String) throws(PostgresError) {
        guard text.hasPrefix("postgresql://") || text.hasPrefix("postgres://") else {
            throw .configuration("the database URL must look like postgresql://user:password@host:port/database")
        }
        guard var components = URLComponents(string: text), components.host != nil else {
            throw .configuration("the database URL is not a valid URL; percent-encode special characters in the password")
        }
        connectionString = text
        if components.password != nil { components.password = "***" }
        redacted = components.string ?? "postgresql://***"
    }

    public var description: String { redacted }
}
