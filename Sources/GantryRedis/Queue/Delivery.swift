/// One stream entry handed to a consumer: the lease on it lasts as long as the
/// entry is pending under this consumer's name and its idle time stays below the lease.
public struct Delivery: Sendable {
    /// The kind whose stream it came from.
    public let kind: String
    /// The stream entry id, e.g. `1732712345678-0`.
    public let id: String
    /// The entry's fields; empty when the entry was deleted after delivery.
    public let fields: [(String, String)]

    public init(kind: String, id: String, fields: [(String, String)]) {
        self.kind = kind
        self.id = id
        self.fields = fields
    }
}

/// A delivery whose holder has been silent past its lease.
public struct ExpiredDelivery: Sendable, Equatable {
    public let kind: String
    public let id: String
    public let consumer: String
    public let idleMs: Int64
    public let deliveries: Int64
}

/// An event read from the events stream.
public struct EventEntry: Sendable {
    public let id: String
    public let fields: [(String, String)]
}
