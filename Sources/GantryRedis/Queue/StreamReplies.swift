/// How stream replies (`XRANGE`, `XREAD`, `XREADGROUP`, `XCLAIM`) are read, for every key
/// family that is a stream.
enum StreamReplies {
    /// The entries of an `XRANGE`-shaped reply: `[[id, [field, value, …]], …]`.
    static func entries(_ reply: RedisValue) -> [EventEntry] {
        guard let entries = reply.array else { return [] }
        return entries.compactMap { entry in
            guard let parts = entry.array, parts.count == 2, let id = parts[0].string else { return nil }
            return EventEntry(id: id, fields: parts[1].pairs ?? [])
        }
    }

    /// The entries of an `XREAD`-shaped reply, each with the key of its stream.
    static func streams(_ reply: RedisValue) -> [(stream: String, entry: EventEntry)] {
        guard let streams = reply.array else { return [] }
        var out: [(stream: String, entry: EventEntry)] = []
        for stream in streams {
            guard let pair = stream.array, pair.count == 2, let key = pair[0].string else { continue }
            for entry in entries(pair[1]) { out.append((key, entry)) }
        }
        return out
    }
}
