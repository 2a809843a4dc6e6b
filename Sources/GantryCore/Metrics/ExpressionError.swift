/// Why a one-line expression of a metrics watch (a condition, a scrape query) was
/// refused: the 1-based column and what is wrong there.
public struct ExpressionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let column: Int
    public let problem: String

    public init(column: Int, problem: String) {
        self.column = column
        self.problem = problem
    }

    public var description: String { "column \(column): \(problem)" }
}
