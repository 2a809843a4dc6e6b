internal import CLibPQ
import Synchronization

/// Statements that every connection prepares once and then only executes, so the
/// server neither parses nor plans them again: the read path of the API, where
/// planning was half of a run view's database time.
///
/// Only statements that look rows up by key, or whose plan cannot depend on their
/// parameters (the ledger's insert from arrays), belong here. A prepared statement may
/// be run with a generic plan (PostgreSQL's `plan_cache_mode = auto`), which is
/// right for `WHERE run_id = $1` and can be wrong for `= ANY` over arrays of any
/// length on its own: the transitions' statements are prepared because they only run
/// after `RunTransitions.load` turned sequential scans off for the transaction, so their
/// generic plans are the keyed ones (see `RunTransitions.lockRunsSQL`).
///
/// Connection poolers in transaction mode must support protocol-level prepared
/// statements (PgBouncer 1.21 and later with `max_prepared_statements`).
public enum PreparedStatements {
    /// Registers `sql` under `name` and returns the text, for `static let` declarations.
    /// Callers pass the returned text to `query` or `pipeline` as usual.
    public static func register(_ name: String, _ sql: String) -> String {
        catalog.withLock { catalog in
            precondition(catalog.values.allSatisfy { $0 != name } || catalog[sql] == name, "two statements named \(name)")
            catalog[sql] = name
        }
        return sql
    }

    /// The name `sql` was registered under, or nil for a statement run as it is.
    static func name(for sql: String) -> String? {
        catalog.withLock { $0[sql] }
    }

    private static let catalog = Mutex<[String: String]>([:])

    // MARK: What each connection has prepared

    /// By connection (its `PGconn` address), the names prepared on it. Kept outside the
    /// connection actor and forgotten when the connection closes, since a new
    /// connection may reuse the address.
    private static let prepared = Mutex<[UInt: Set<String>]>([:])

    static func isPrepared(_ name: String, on conn: OpaquePointer) -> Bool {
        prepared.withLock { $0[UInt(bitPattern: conn)]?.contains(name) ?? false }
    }

    static func markPrepared(_ name: String, on conn: OpaquePointer) {
        _ = prepared.withLock { $0[UInt(bitPattern: conn), default: []].insert(name) }
    }

    static func forget(_ conn: OpaquePointer) {
        _ = prepared.withLock { $0.removeValue(forKey: UInt(bitPattern: conn)) }
    }
}
