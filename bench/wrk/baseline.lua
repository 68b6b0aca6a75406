-- POST /oauth/token with the client_credentials grant (the Authlib baseline).
--
-- Usage: wrk -t T -c C -d D -s baseline.lua URL -- REQUEST_FILE
--
-- REQUEST_FILE (written by bench/run.py, mode 0600): line 1 is the value of
-- the Authorization header (client_secret_basic); an optional line 2 is the
-- path (default /oauth/token) and an optional line 3 the form body (default
-- grant_type=client_credentials&scope=read).  Every request is the same;
-- each one makes the server issue a new token.
--
-- done() prints one line "BENCH_RESULT {json}" with the totals.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
   local auth = f:read("*l")
   local path = f:read("*l") or "/oauth/token"
   local body = f:read("*l") or "grant_type=client_credentials&scope=read"
   f:close()
   local headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = auth,
      ["Accept"] = "application/json",
   }
   if os.getenv("WRK_CONNECTION_CLOSE") == "1" then
      headers["Connection"] = "close"  -- a new TCP connection per request
   end
   req = wrk.format("POST", path, headers, body)
   non200 = 0
end

function request()
   return req
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
      if non200 <= 3 then
         local err = body and string.match(body, '"error"%s*:%s*"([^"]*)"') or "?"
         io.stderr:write("non-200 response: " .. status .. " " .. err .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local non200_total = 0
   for _, t in ipairs(threads) do
      non200_total = non200_total + (t:get("non200") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
      '"non200": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d}\n',
      summary.requests, summary.duration,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0), latency.max, latency.mean,
      non200_total,
      e.connect, e.read, e.write, e.timeout, e.status))
end
