import Logging

/// Applies the schema migrations that are missing, each in its own transaction,
/// under an advisory lock so two migrators never race. Running it again is a no-op.
public struct Migrator: Sendable {
    /// What a run of the migrator did.
    public struct Report: Sendable, Equatable {
        public var applied: [Int]
        public var current: Int
    }

    private let migrations: [Migration]
    /// An arbitrary constant naming Gantry's migration lock.
    private static let lockKey = "7301560421"

    public init(migrations: [Migration] = Migration.all) {
        self.migrations = migrations
    }

    public func migrate(_ connection: PostgresConnection, logger: Logger) async throws(PostgresError) -> Report {
        try await connection.migrateIsolated(migrations, lockKey: Self.lockKey, logger: logger)
    }
}

extension PostgresConnection {
    fileprivate func migrateIsolated(_ migrations: [Migration], lockKey: String, logger: Logger) throws(PostgresError) -> Migrator.Report {
        try query("SELECT pg_advisory_lock($1::bigint)", [lockKey])
        defer { _ = try? query("SELECT pg_advisory_unlock($1::bigint)", [lockKey]) }
        try execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let rows = try query("SELECT version, checksum FROM schema_migrations ORDER BY version")
        var applied: [Int: String] = [:]
        for index in 0..<rows.count {
            if let version = rows[index].int("version") { applied[version] = rows[index].string("checksum") }
        }
        var report = Migrator.Report(applied: [], current: applied.keys.max() ?? 0)
        for migration in migrations {
            let checksum = Self.checksum(migration.sql)
            if let recorded = applied[migration.version] {
                guard recorded == checksum else {
                    throw .configuration("migration \(migration.version) (\(migration.name)) differs from the one applied to this database; migrations must never be edited once released")
                }
                continue
            }
            try transaction { (connection: isolated PostgresConnection) throws(PostgresError) in
                try connection.execute(migration.sql)
                try connection.query(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    [String(migration.version), migration.name, checksum]
                )
            }
            logger.info("applied migration", metadata: ["gantry.migration": "\(migration.version) \(migration.name)"])
            report.applied.append(migration.version)
            report.current = migration.version
        }
        return report
    }

    /// FNV-1a 64 over the SQL text: enough to notice an edited migration.
    private static func checksum(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
