/// Where and how the dispatcher serves its HTTP API.
public struct APIConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Postgres connections for requests that change something (each runs one call at a time).
    public var databaseConnections: Int
    /// Postgres connections for reads and token checks, so that a read never waits behind a change.
    public var readConnections: Int
    /// The largest request body accepted (a pipeline definition travels in it).
    public var maxBodyBytes: Int
    /// How long an event stream waits for news of its run before it re-reads the run anyway
    /// (news comes at once; this only covers an announcement that was lost).
    public var eventsFallback: Duration = .seconds(2)
    /// How often requests refused for want of a token are written to the actions log, as counts.
    public var refusalFlushInterval: Duration = .seconds(5)
    /// Requests per second each token may make (twice that in a burst); 0: no limit.
    public var tokenRate: Double = 100
    /// How long a connection may sit without a request before it is closed (a stream being
    /// answered is not idle).
    public var idleTimeout: Duration = .seconds(60)
    /// Event streams and followed logs one token may hold open at once.
    public var streamsPerToken: Int = 32
    /// How often an open stream checks that its token was not revoked.
    public var streamRecheck: Duration = .seconds(5)
    /// PEM files of the API's certificate (chain) and private key: with both, the API speaks HTTPS only.
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    /// The process's metrics in Prometheus's text format, served at `/metrics` (the command
    /// chooses the backend); nil serves none (404).
    public var metricsExposition: (@Sendable () -> [UInt8])?

    public init(host: String, port: Int, databaseConnections: Int = 4, readConnections: Int = 2, maxBodyBytes: Int = 1 << 20) {
        self.host = host
        self.port = port
        self.databaseConnections = databaseConnections
        self.readConnections = readConnections
        self.maxBodyBytes = maxBodyBytes
    }

    /// Parses `HOST:PORT` (`127.0.0.1:8080`, `[::1]:8080`, `:8080` for all interfaces).
    public static func parse(listen: String) -> APIConfiguration? {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (0...65_535).contains(port) else { return nil }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return APIConfiguration(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }
}
