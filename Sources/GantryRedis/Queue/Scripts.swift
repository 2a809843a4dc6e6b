/// The Lua scripts of the queue protocol. Each runs atomically in Redis.
enum Scripts {
    /// Renews leases: for each id still pending under ARGV[2], reset its idle time
    /// (XCLAIM … JUSTID does not count a delivery) and return it. Ids another
    /// consumer took over are left alone and left out of the answer.
    /// KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3…] ids.
    static let renew = """
        local owned = {}
        for i = 3, #ARGV do
          local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
          if p[1] and p[1][2] == ARGV[2] then
            redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
            owned[#owned + 1] = ARGV[i]
          end
        end
        return owned
        """

    /// Moves due delayed retries to their streams and removes them from the set,
    /// stamping the enqueue time with ARGV[3] so pickup latency counts from now.
    /// KEYS[1] delayed set; ARGV[1] now (ms), ARGV[2] limit, ARGV[3] now (µs).
    static let moveDue = """
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
        for _, member in ipairs(due) do
          local ok, job = pcall(cjson.decode, member)
          if ok and type(job) == 'table' and type(job.s) == 'string' and type(job.f) == 'table' then
            local fields = job.f
            for i = 1, #fields - 1, 2 do
              if fields[i] == 'enq' then fields[i + 1] = ARGV[3] end
            end
            redis.call('XADD', job.s, '*', unpack(fields))
          end
          redis.call('ZREM', KEYS[1], member)
        end
        return due
        """
}
