/// A Redis reply, copied out of hiredis memory into Swift values.
public enum RedisValue: Sendable, Equatable {
    case null
    case status(String)
    case integer(Int64)
    case string(String)
    case array([RedisValue])
    /// An error reply, e.g. `NOGROUP No such key`. Pipelines keep it in place.
    case error(String)

    public var string: String? {
        switch self {
        case .string(let s), .status(let s): s
        case .integer(let i): String(i)
        default: nil
        }
    }

    public var integer: Int64? {
        switch self {
        case .integer(let i): i
        case .string(let s): Int64(s)
        default: nil
        }
    }

    public var array: [RedisValue]? {
        if case .array(let a) = self { a } else { nil }
    }

    public var isNull: Bool { self == .null }

    /// Throws the error reply as a `RedisError`, passes any other value through.
    public func orThrow() throws(RedisError) -> RedisValue {
        if case .error(let message) = self { throw .reply(message) }
        return self
    }

    /// A flat `[field, value, field, value …]` array as pairs.
    public var pairs: [(String, String)]? {
        guard let items = array, items.count % 2 == 0 else { return nil }
        var out: [(String, String)] = []
        out.reserveCapacity(items.count / 2)
        var index = 0
        while index < items.count {
            guard let name = items[index].string, let value = items[index + 1].string else { return nil }
            out.append((name, value))
            index += 2
        }
        return out
    }
}
