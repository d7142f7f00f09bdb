-- wrk script: Basic credentials of many users, and a JSON summary.
--
--   wrk ... -s users.lua URL -- HEADERS_FILE MODE THREADS
--
-- HEADERS_FILE holds one Authorization header value per line.
-- MODE "rotate": each thread cycles through all users, the threads starting
--   at evenly spread offsets, so consecutive requests are different users.
-- MODE "once": the users are split among the threads and each is used for
--   one request only (first requests of new customers); a thread that runs
--   out stops and the summary says so (the run was then too long for the file).
-- With PEGABENCH_STATUS=1 in the environment, answers are counted by status
-- (this makes wrk parse every response in Lua, so only where needed).
--
-- With PEGABENCH_DELAY_MS=n, each connection waits n ms after an answer
-- before its next request: a load below saturation, the same for every
-- variant compared.
-- done() prints one line: "PEGABENCH " followed by JSON.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

local all, pos, last, mode

function init(args)
   local file, nthreads = args[1], tonumber(args[3])
   mode = args[2]
   local lines = {}
   for line in io.lines(file) do
      lines[#lines + 1] = line
   end
   local n = #lines
   if mode == "once" then
      local per = math.floor(n / nthreads)
      pos = (id - 1) * per + 1
      last = id * per
   else
      pos = 1 + math.floor((id - 1) * n / nthreads)
      last = n
   end
   all = lines
   exhausted = 0
end

function request()
   if pos > last then
      -- only in "once" mode: never borrow another thread's users
      exhausted = 1
      wrk.thread:stop()
      return wrk.format(nil, nil, { Authorization = all[last] })
   end
   local header = all[pos]
   pos = pos + 1
   if pos > last and mode ~= "once" then
      pos = 1
   end
   return wrk.format(nil, nil, { Authorization = header })
end

local pause = tonumber(os.getenv("PEGABENCH_DELAY_MS") or "")
if pause and pause > 0 then
   function delay()
      return pause
   end
end

if os.getenv("PEGABENCH_STATUS") == "1" then
   statuses = {}
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

local function json_object(pairs_list)
   local parts = {}
   for _, kv in ipairs(pairs_list) do
      parts[#parts + 1] = string.format("%q:%s", kv[1], kv[2])
   end
   return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
   local pct = {}
   for _, p in ipairs({ 1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 90, 95, 97, 98, 99, 99.5, 99.9, 99.99 }) do
      pct[#pct + 1] = { tostring(p), string.format("%.1f", latency:percentile(p)) }
   end
   local codes, stopped = {}, 0
   for _, thread in ipairs(threads) do
      local counted = thread:get("statuses")
      if counted then
         for code, count in pairs(counted) do
            codes[tostring(code)] = (codes[tostring(code)] or 0) + count
         end
      end
      stopped = stopped + (thread:get("exhausted") or 0)
   end
   local code_list = {}
   for code, count in pairs(codes) do
      code_list[#code_list + 1] = { code, tostring(count) }
   end
   local e = summary.errors
   local out = json_object({
      { "requests", tostring(summary.requests) },
      { "duration_us", tostring(summary.duration) },
      { "rps", string.format("%.1f", summary.requests / (summary.duration / 1e6)) },
      { "bytes", tostring(summary.bytes) },
      { "errors", json_object({
         { "connect", tostring(e.connect) }, { "read", tostring(e.read) },
         { "write", tostring(e.write) }, { "status", tostring(e.status) },
         { "timeout", tostring(e.timeout) } }) },
      { "latency_us", json_object({
         { "mean", string.format("%.1f", latency.mean) },
         { "stdev", string.format("%.1f", latency.stdev) },
         { "min", tostring(latency.min) }, { "max", tostring(latency.max) } }) },
      { "percentiles_us", json_object(pct) },
      { "statuses", json_object(code_list) },
      { "threads_out_of_users", tostring(stopped) },
   })
   io.write("PEGABENCH ", out, "\n")
end
