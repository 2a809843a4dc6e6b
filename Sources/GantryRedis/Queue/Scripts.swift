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

    /// Deletes the entries group ARGV[1] is done with: every entry before its oldest pending
    /// one or, when none is pending, every entry it was given. Such entries were acknowledged
    /// (the group reads in id order), so nothing waiting or leased is touched. One trim
    /// instead of an XDEL per acknowledged id: XDEL cost ~3 µs per id (a seek and three
    /// in-place rewrites of the node), and a trim frees whole nodes at once.
    /// KEYS[1] stream; ARGV[1] group. Returns how many entries went.
    static let trimAcknowledged = """
        local floor = redis.call('XPENDING', KEYS[1], ARGV[1])[2]
        if not floor then
          local last = nil
          for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
            local name, delivered
            for i = 1, #group - 1, 2 do
              if group[i] == 'name' then name = group[i + 1] elseif group[i] == 'last-delivered-id' then delivered = group[i + 1] end
            end
            if name == ARGV[1] then last = delivered end
          end
          if not last then return 0 end
          local ms, seq = string.match(last, '^(%d+)-(%d+)$')
          if not ms then return 0 end
          floor = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
        end
        return redis.call('XTRIM', KEYS[1], 'MINID', floor)
        """

    /// How many entries of the stream are waiting or leased for group ARGV[1], and how many
    /// of those are leased: {waiting + leased, leased}. O(entries waiting).
    /// KEYS[1] stream; ARGV[1] group.
    static let depth = """
        local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1])
        if type(pending) ~= 'table' or pending.err then return {0, 0} end
        local last = '0-0'
        for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
          local name, delivered
          for i = 1, #group - 1, 2 do
            if group[i] == 'name' then name = group[i + 1] elseif group[i] == 'last-delivered-id' then delivered = group[i + 1] end
          end
          if name == ARGV[1] then last = delivered end
        end
        local waiting = #redis.call('XRANGE', KEYS[1], '(' .. last, '+')
        return {waiting + pending[1], pending[1]}
        """
}
