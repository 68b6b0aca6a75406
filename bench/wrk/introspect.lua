-- POST /oauth/introspect (RFC 7662) for one valid access token, repeatedly.
--
-- Usage: wrk -t T -c C -d D -s introspect.lua URL -- REQUEST_FILE
--
-- REQUEST_FILE (written by bench/run.py, mode 0600): line 1 is the value of
-- the Authorization header (client_secret_basic), line 2 the access token.
-- A response counts as an error unless it is a 200 whose body says
-- "active": true, so a server that wrongly answers inactive is not fast.
--
-- done() prints one line "BENCH_RESULT {json}" with the totals.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
   local auth = f:read("*l")
   local token = f:read("*l")
   f:close()
   req = wrk.format("POST", "/oauth/introspect", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = auth,
      ["Accept"] = "application/json",
   }, "token=" .. token .. "&token_type_hint=access_token")
   non200 = 0
   inactive = 0
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
   elseif not (body and string.find(body, '"active"%s*:%s*true')) then
      inactive = inactive + 1
      if inactive <= 3 then
         io.stderr:write("introspection answered inactive\n")
      end
   end
end

function done(summary, latency, requests)
   local non200_total, inactive_total = 0, 0
   for _, t in ipairs(threads) do
      non200_total = non200_total + (t:get("non200") or 0)
      inactive_total = inactive_total + (t:get("inactive") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
      '"non200": %d, "inactive": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d}\n',
      summary.requests, summary.duration,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0), latency.max, latency.mean,
      non200_total, inactive_total,
      e.connect, e.read, e.write, e.timeout, e.status))
end
