import GantryCore

/// API tokens. Only a token's SHA-256 is stored; the token itself is shown once, at creation.
public struct TokenStore: Sendable {
    /// A token as listings show it (never its hash).
    public struct Token: Sendable, Equatable {
        public var id: String
        public var name: String
        public var roles: [Role]
        public var environments: [String]
        public var createdAtMs: Int64
        public var revokedAtMs: Int64?
    }

    public init() {}

    /// Stores a new token; refuses a name already used by a live token. The creation is
    /// recorded in the actions log with `actor` (who ran the command), in the same transaction.
    public func create(
        id: String, name: String, roles: [Role], environments: [String], hash: String, namespace: String,
        actor: String = "(unrecorded)", on db: PostgresConnection
    ) async throws(PostgresError) -> Result<Void, RunRefusal> {
        do {
            try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) in
                try db.query(
                    "INSERT INTO tokens (id, namespace, name, hash, roles, environments) VALUES ($1, $2, $3, $4, $5::text[], $6::text[])",
                    [id, namespace, name, hash, PostgresArray.literal(roles.map(\.rawValue)), PostgresArray.literal(environments)]
                )
                let scope = environments.isEmpty ? "" : " for \(environments.joined(separator: ","))"
                try db.query(
                    "INSERT INTO actions (namespace, actor, action, accepted, reason) VALUES ($1, $2, 'token.create', true, $3)",
                    [namespace, actor, "token \(name): \(roles.map(\.rawValue).joined(separator: ","))\(scope)"]
                )
            }
            return .success(())
        } catch where error.sqlState == PostgresError.uniqueViolation {
            return .failure(RunRefusal(.conflict, "a token named \(name) exists; revoke it first or choose another name"))
        }
    }

    /// The grant of the live token with this hash.
    public func grant(hash: String, namespace: String, on db: PostgresConnection) async throws(PostgresError) -> Grant? {
        let query = TokenStore.grantQuery(hash: hash, namespace: namespace)
        return TokenStore.grant(from: try await db.run(query.sql, query.parameters))
    }

    /// The statement `grant` runs, for callers that send it in a pipeline with others.
    static func grantQuery(hash: String, namespace: String) -> (sql: String, parameters: [String?]) {
        (grantSQL, [hash, namespace])
    }

    private static let grantSQL = PreparedStatements.register(
        "gantry_token_grant",
        "SELECT name, roles, environments FROM tokens WHERE hash = $1 AND namespace = $2 AND revoked_at IS NULL"
    )

    /// The grant in the rows of `grantQuery`, or nil for an unknown or revoked token.
    static func grant(from rows: PostgresRows) -> Grant? {
        guard !rows.isEmpty, let name = rows[0].string("name") else { return nil }
        return Grant(
            name: name,
            roles: Set(PostgresArray.parse(rows[0].string("roles") ?? "{}").compactMap(Role.init(rawValue:))),
            environments: Set(PostgresArray.parse(rows[0].string("environments") ?? "{}"))
        )
    }

    /// Every token of the installation, newest first.
    public func list(namespace: String, on db: PostgresConnection) async throws(PostgresError) -> [Token] {
        let rows = try await db.run(
            """
            SELECT id, name, roles, environments, (extract(epoch FROM created_at) * 1000)::bigint AS created_ms,
                   (extract(epoch FROM revoked_at) * 1000)::bigint AS revoked_ms
            FROM tokens WHERE namespace = $1 ORDER BY created_at DESC
            """,
            [namespace]
        )
        return (0..<rows.count).compactMap { index in
            let row = rows[index]
            guard let id = row.string("id"), let name = row.string("name"), let created = row.int64("created_ms") else { return nil }
            return Token(
                id: id, name: name, roles: PostgresArray.parse(row.string("roles") ?? "{}").compactMap(Role.init(rawValue:)),
                environments: PostgresArray.parse(row.string("environments") ?? "{}"),
                createdAtMs: created, revokedAtMs: row.int64("revoked_ms")
            )
        }
    }

    /// Revokes the live token with this name, recorded with `actor`; false when there is none.
    public func revoke(name: String, namespace: String, actor: String = "(unrecorded)", on db: PostgresConnection) async throws(PostgresError) -> Bool {
        try await db.transactionAsync { (db: isolated PostgresConnection) throws(PostgresError) in
            let revoked = try db.query(
                "UPDATE tokens SET revoked_at = now() WHERE name = $1 AND namespace = $2 AND revoked_at IS NULL",
                [name, namespace]
            ).affected > 0
            if revoked {
                try db.query(
                    "INSERT INTO actions (namespace, actor, action, accepted, reason) VALUES ($1, $2, 'token.revoke', true, $3)",
                    [namespace, actor, "token \(name)"]
                )
            }
            return revoked
        }
    }
}

/// The log of API actions, accepted and refused, with the token's name. Append-only.
public struct ActionLog: Sendable {
    public init() {}

    public func record(
        namespace: String, actor: String, action: String, runID: String?, environment: String?, accepted: Bool,
        reason: String?, on db: PostgresConnection
    ) async throws(PostgresError) {
        try await db.run(
            "INSERT INTO actions (namespace, actor, action, run_id, environment, accepted, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [namespace, actor, action, runID, environment, accepted ? "t" : "f", reason]
        )
    }

    /// One recorded action.
    public struct Entry: Sendable, Equatable {
        public var actor: String
        public var action: String
        public var runID: String?
        public var environment: String?
        public var accepted: Bool
        public var reason: String?
    }

    /// The latest actions, newest first.
    public func recent(namespace: String, limit: Int, on db: PostgresConnection) async throws(PostgresError) -> [Entry] {
        let rows = try await db.run(
            "SELECT actor, action, run_id, environment, accepted, reason FROM actions WHERE namespace = $1 ORDER BY seq DESC LIMIT $2",
            [namespace, String(limit)]
        )
        return (0..<rows.count).compactMap { index in
            let row = rows[index]
            guard let actor = row.string("actor"), let action = row.string("action") else { return nil }
            return Entry(
                actor: actor, action: action, runID: row.string("run_id"), environment: row.string("environment"),
                accepted: row.bool("accepted") ?? false, reason: row.string("reason")
            )
        }
    }
}
