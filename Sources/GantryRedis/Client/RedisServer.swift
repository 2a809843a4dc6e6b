/// What the rest of Gantry asks of the Redis server itself, rather than of a key family.
extension RedisConnection {
    /// Round trip to the server (readiness checks): throws when it does not answer `PONG`.
    public func ping() async throws(RedisError) {
        let reply = try await command(["PING"])
        guard reply.string == "PONG" else { throw .protocolViolation("PING answered \(reply)") }
    }

    /// The server's own CPU time in seconds (`used_cpu_user` + `used_cpu_sys` of `INFO cpu`),
    /// or nil when it does not say (the benchmark's CPU accounting).
    public func serverCPUSeconds() async throws(RedisError) -> Double? {
        guard let info = try await command(["INFO", "cpu"]).string else { return nil }
        var total: Double?
        for line in info.split(whereSeparator: \.isNewline) {
            let pair = line.split(separator: ":", maxSplits: 1)
            guard pair.count == 2, pair[0] == "used_cpu_user" || pair[0] == "used_cpu_sys", let value = Double(pair[1]) else { continue }
            total = (total ?? 0) + value
        }
        return total
    }
}
