-- POST /oauth/token with the JWT bearer grant, one fresh assertion per request.
--
-- Usage: wrk -t T -c C -d D -s token.lua URL -- REQUESTS_FILE T
--
-- REQUESTS_FILE (written by bench/run.py, mode 0600): line 1 is the value of
-- the Authorization header (client_secret_basic), every further line is one
-- signed assertion; T is wrk's thread count.  Thread k of T takes lines k,
-- k+T, k+2T, ... so no two threads share an assertion and none is ever sent
-- twice.  When a thread runs
-- out it stops itself and the run is reported as exhausted (bench/run.py then
-- retries with more assertions).
--
-- done() prints one line "BENCH_RESULT {json}" with the totals.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("thread_index", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   -- wrk calls each thread's init() right after that thread's setup(), before
   -- the next thread exists, so the thread count comes as an argument.
   local path = args[1]
   local thread_count = assert(tonumber(args[2]), "second argument: number of wrk threads")
   assert(thread_index < thread_count, "thread count argument smaller than wrk -t")
   local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
   local auth = f:read("*l")
   local headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = auth,
      ["Accept"] = "application/json",
   }
   if os.getenv("WRK_CONNECTION_CLOSE") == "1" then
      headers["Connection"] = "close"  -- a new TCP connection per request (bench/slowclients)
   end
   local prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
   reqs = {}
   local i = 0
   for line in f:lines() do
      if line ~= "" then
         if i % thread_count == thread_index then
            reqs[#reqs + 1] = wrk.format("POST", "/oauth/token", headers, prefix .. line)
         end
         i = i + 1
      end
   end
   f:close()
   pos = 0
   sent = 0
   non200 = 0
   exhausted = 0
   sentinel = wrk.format("GET", "/healthz")
end

function request()
   pos = pos + 1
   if pos > #reqs then
      -- Out of fresh assertions: never resend one.  Stop this thread and
      -- send a harmless request so the connection stays valid meanwhile.
      exhausted = exhausted + 1
      if exhausted == 1 then
         wrk.thread:stop()
      end
      return sentinel
   end
   sent = sent + 1
   return reqs[pos]
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
      if non200 <= 3 then
         -- Show the error code only (never a token or secret).
         local err = body and string.match(body, '"error"%s*:%s*"([^"]*)"') or "?"
         io.stderr:write("non-200 response: " .. status .. " " .. err .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local non200_total, exhausted_total, sent_total = 0, 0, 0
   for _, t in ipairs(threads) do
      non200_total = non200_total + (t:get("non200") or 0)
      exhausted_total = exhausted_total + (t:get("exhausted") or 0)
      sent_total = sent_total + (t:get("sent") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
      '"non200": %d, "exhausted": %d, "sent": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d}\n',
      summary.requests, summary.duration,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0), latency.max, latency.mean,
      non200_total, exhausted_total, sent_total,
      e.connect, e.read, e.write, e.timeout, e.status))
end
