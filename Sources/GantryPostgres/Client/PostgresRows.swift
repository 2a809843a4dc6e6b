/// The rows of a query result, copied out of libpq memory as text values.
public struct PostgresRows: Sendable {
    public let columns: [String]
    public let rows: [[String?]]
    /// Rows the statement touched (`INSERT`, `UPDATE`, `DELETE`).
    public let affected: Int
    /// Column positions by name, computed once per result (rows are read by name on the hot path).
    private let positions: [String: Int]

    public init(columns: [String], rows: [[String?]], affected: Int) {
        self.columns = columns
        self.rows = rows
        self.affected = affected
        var positions: [String: Int] = [:]
        for (index, name) in columns.enumerated() where positions[name] == nil { positions[name] = index }
        self.positions = positions
    }

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }

    /// The index of a column by name; traps only on a programming error (a typo in our own SQL).
    public func column(_ name: String) -> Int {
        guard let index = positions[name] else {
            preconditionFailure("query has no column '\(name)'; columns: \(columns)")
        }
        return index
    }

    /// A typed view of one row.
    public subscript(row: Int) -> PostgresRow {
        PostgresRow(rows: self, index: row)
    }
}

/// One row of `PostgresRows`, read by column name.
public struct PostgresRow: Sendable {
    let rows: PostgresRows
    let index: Int

    public func string(_ name: String) -> String? { rows.rows[index][rows.column(name)] }
    /// The value at a column position from `PostgresRows.column(_:)`, for loops over many rows.
    public func string(at column: Int) -> String? { rows.rows[index][column] }
    public func int(at column: Int) -> Int? { string(at: column).flatMap { Int($0) } }
    public func int64(at column: Int) -> Int64? { string(at: column).flatMap { Int64($0) } }
    public func bool(at column: Int) -> Bool? { string(at: column).map { $0 == "t" } }
    public func int(_ name: String) -> Int? { string(name).flatMap { Int($0) } }
    public func int64(_ name: String) -> Int64? { string(name).flatMap { Int64($0) } }
    public func bool(_ name: String) -> Bool? { string(name).map { $0 == "t" } }
}
