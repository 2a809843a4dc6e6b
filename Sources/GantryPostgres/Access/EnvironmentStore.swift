import GantryCore

/// Environment policies as an admin applied them, and the record of every change.
/// Loads, locks and saves only: what a policy means is `EnvironmentRules`' concern.
public struct EnvironmentStore: Sendable {
    /// A policy as stored: the file's text exactly, and who applied it when.
    public struct Stored: Sendable, Equatable {
        public var name: String
        public var definition: String
        public var sha256: String
        public var updatedAtMs: Int64
        public var updatedBy: String
    }

    /// One apply, as the change log keeps it.
    public struct Change: Sendable, Equatable {
        public var actor: String
        public var atMs: Int64
        public var before: String?
        public var after: String
    }

    public init() {}

    /// The policy of one environment, or nil when it has none.
    public func load(_ name: String, namespace: String, on db: PostgresConnection) async throws(PostgresError) -> Stored? {
        let rows = try await db.run(Self.selectSQL + " WHERE namespace = $1 AND name = $2", [namespace, name])
        return rows.isEmpty ? nil : Self.stored(rows[0])
    }

    /// Every policy of the installation, by name.
    public func list(namespace: String, on db: PostgresConnection) async throws(PostgresError) -> [Stored] {
        let rows = try await db.run(Self.selectSQL + " WHERE namespace = $1 ORDER BY name", [namespace])
        return (0..<rows.count).compactMap { Self.stored(rows[$0]) }
    }

    /// Stores `definition` as the policy of `name`; the change (before and after), and the
    /// action with its actor, are recorded in the same transaction. Applying the same text
    /// again changes and records nothing (`changed` false).
    public func apply(
        name: String, definition: String, sha256: String, actor: String, namespace: String, on db: PostgresConnection
    ) async throws(PostgresError) -> (changed: Bool, before: String?) {
        try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) in
            let current = try db.query(
                "SELECT definition, sha256 FROM environments WHERE namespace = $1 AND name = $2 FOR UPDATE", [namespace, name]
            )
            let before = current.isEmpty ? nil : current[0].string("definition")
            if !current.isEmpty, current[0].string("sha256") == sha256 { return (false, before) }
            try db.query(
                """
                INSERT INTO environments (namespace, name, definition, sha256, updated_by) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (namespace, name) DO UPDATE
                SET definition = EXCLUDED.definition, sha256 = EXCLUDED.sha256, updated_by = EXCLUDED.updated_by, updated_at = now()
                """,
                [namespace, name, definition, sha256, actor]
            )
            try db.query(
                "INSERT INTO environment_changes (namespace, environment, actor, before, after) VALUES ($1, $2, $3, $4, $5)",
                [namespace, name, actor, before, definition]
            )
            try db.query(
                "INSERT INTO actions (namespace, actor, action, environment, accepted, reason) VALUES ($1, $2, 'environment.apply', $3, true, $4)",
                [namespace, actor, name, "policy sha256 \(sha256)"]
            )
            return (true, before)
        }
    }

    /// The changes of one environment's policy, oldest first.
    public func history(_ name: String, namespace: String, on db: PostgresConnection) async throws(PostgresError) -> [Change] {
        let rows = try await db.run(
            """
            SELECT actor, (extract(epoch FROM at) * 1000)::bigint AS at_ms, before, after
            FROM environment_changes WHERE namespace = $1 AND environment = $2 ORDER BY seq
            """,
            [namespace, name]
        )
        return (0..<rows.count).compactMap { index in
            let row = rows[index]
            guard let actor = row.string("actor"), let at = row.int64("at_ms"), let after = row.string("after") else { return nil }
            return Change(actor: actor, atMs: at, before: row.string("before"), after: after)
        }
    }

    private static let selectSQL = """
        SELECT name, definition, sha256, (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms, updated_by FROM environments
        """

    private static func stored(_ row: PostgresRow) -> Stored? {
        guard let name = row.string("name"), let definition = row.string("definition"), let sha = row.string("sha256"),
              let at = row.int64("updated_ms"), let by = row.string("updated_by") else { return nil }
        return Stored(name: name, definition: definition, sha256: sha, updatedAtMs: at, updatedBy: by)
    }
}
