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
    /// stamping the enqueue time with ARGV[3] so pickup latency counts from now (the `enq`
    /// field, or the last word of the compact `job` field).
    /// KEYS[1] delayed set; ARGV[1] now (ms), ARGV[2] limit, ARGV[3] now (µs).
    static let moveDue = """
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
        for _, member in ipairs(due) do
          local ok, job = pcall(cjson.decode, member)
          if ok and type(job) == 'table' and type(job.s) == 'string' and type(job.f) == 'table' then
            local fields = job.f
            for i = 1, #fields - 1, 2 do
              if fields[i] == 'enq' then fields[i + 1] = ARGV[3]
              elseif fields[i] == 'job' then fields[i + 1] = (string.gsub(fields[i + 1], '%S+$', ARGV[3])) end
            end
            redis.call('XADD', job.s, '*', unpack(fields))
          end
          redis.call('ZREM', KEYS[1], member)
        end
        return due
        """

    /// Lua: `last_delivered(stream, group)`, the id of the last entry the group handed out, or
    /// nil when the stream or the group does not exist. Prefixed to the scripts that need it.
    private static let lastDelivered = """
        local function last_delivered(stream, group)
          local groups = redis.pcall('XINFO', 'GROUPS', stream)
          if type(groups) ~= 'table' or groups.err then return nil end
          for _, entry in ipairs(groups) do
            local name, delivered
            for i = 1, #entry - 1, 2 do
              if entry[i] == 'name' then name = entry[i + 1] elseif entry[i] == 'last-delivered-id' then delivered = entry[i + 1] end
            end
            if name == group then return delivered end
          end
          return nil
        end

        """

    /// Lua: `attempt_name(fields)`, `run/step/attempt` of a job's flat field list in either
    /// format (as the cancel list names attempts), or nil when a field is missing.
    private static let attemptName = """
        local function attempt_name(fields)
          local run, step, attempt
          for i = 1, #fields - 1, 2 do
            local name = fields[i]
            if name == 'run' then run = fields[i + 1] elseif name == 'step' then step = fields[i + 1] elseif name == 'attempt' then attempt = fields[i + 1]
            elseif name == 'job' then run, step, attempt = string.match(fields[i + 1], '^(%S+) (%S+) (%S+) ') end
          end
          if run and step and attempt then return run .. '/' .. step .. '/' .. attempt end
          return nil
        end

        """

    /// Deletes the entries group ARGV[1] is done with: every entry before its oldest pending
    /// one or, when none is pending, every entry it was given. Such entries were acknowledged
    /// (the group reads in id order), so nothing waiting or leased is touched. One trim
    /// instead of an XDEL per acknowledged id: XDEL cost ~3 µs per id (a seek and three
    /// in-place rewrites of the node), and a trim frees whole nodes at once.
    /// KEYS[1] stream; ARGV[1] group. Returns how many entries went.
    static let trimAcknowledged = lastDelivered + """
        local floor = redis.call('XPENDING', KEYS[1], ARGV[1])[2]
        if not floor then
          local last = last_delivered(KEYS[1], ARGV[1])
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
    static let depth = lastDelivered + """
        local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1])
        if type(pending) ~= 'table' or pending.err then return {0, 0} end
        local last = last_delivered(KEYS[1], ARGV[1]) or '0-0'
        local waiting = #redis.call('XRANGE', KEYS[1], '(' .. last, '+')
        return {waiting + pending[1], pending[1]}
        """

    /// Takes out of a stream, one page at a time, the entries of these attempts that no
    /// consumer of group ARGV[1] was given yet (after its last delivered id, or all of them
    /// when the group does not exist yet): a canceled attempt that waits for a worker must
    /// not wait for one to be recorded `canceled`.
    /// KEYS[1] stream; ARGV[1] group, ARGV[2] where the page starts (exclusive; '' for the
    /// group's last delivered id), ARGV[3] page size, ARGV[4…] attempts as `run/step/attempt`.
    /// Returns {where the next page starts, or '' when done; the entries taken out}.
    static let withdrawWaiting = lastDelivered + attemptName + """
        -- No group yet (no worker of the kind ever started): nothing was given to anyone.
        local last = last_delivered(KEYS[1], ARGV[1]) or '0-0'
        local function before(a, b)
          local am, as = string.match(a, '^(%d+)-(%d+)$')
          local bm, bs = string.match(b, '^(%d+)-(%d+)$')
          if not am or not bm then return true end
          am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
          return am < bm or (am == bm and as < bs)
        end
        local start = ARGV[2]
        if start == '' or before(start, last) then start = last end
        local count = tonumber(ARGV[3])
        local entries = redis.call('XRANGE', KEYS[1], '(' .. start, '+', 'COUNT', count)
        local wanted = {}
        for i = 4, #ARGV do wanted[ARGV[i]] = true end
        local taken = {}
        for _, entry in ipairs(entries) do
          local name = attempt_name(entry[2])
          if name and wanted[name] then
            redis.call('XDEL', KEYS[1], entry[1])
            taken[#taken + 1] = entry
          end
        end
        local following = ''
        if #entries == count then following = entries[#entries][1] end
        return {following, taken}
        """

    /// Takes these attempts' retries out of the delayed set.
    /// KEYS[1] delayed set; ARGV[1…] attempts as `run/step/attempt`. Returns the members taken out.
    static let withdrawDelayed = attemptName + """
        local wanted, runs = {}, {}
        for i = 1, #ARGV do
          wanted[ARGV[i]] = true
          local run = string.match(ARGV[i], '^([^/]+)/')
          if run then runs[#runs + 1] = run end
        end
        local taken = {}
        for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
          local candidate = false
          for _, run in ipairs(runs) do
            if string.find(member, run, 1, true) then candidate = true break end
          end
          if candidate then
            local ok, job = pcall(cjson.decode, member)
            if ok and type(job) == 'table' and type(job.f) == 'table' then
              local name = attempt_name(job.f)
              if name and wanted[name] then
                redis.call('ZREM', KEYS[1], member)
                taken[#taken + 1] = member
              end
            end
          end
        end
        return taken
        """

    /// Deletes the entries of `stream` that `group` acknowledged (`trimAcknowledged`).
    /// Acknowledged entries stay until the next trim; readers of a stream count on the group
    /// (pending list, last delivered id), never on the stream's length.
    static func trimCommand(_ stream: String, group: String) -> [String] {
        ["EVAL", trimAcknowledged, "1", stream, group]
    }
}
