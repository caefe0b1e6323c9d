-- wrk -s bench/load/wrk.lua URL -- WORK WAIT_MS
-- The request mix of make bench-load's closed loop: GET /hash/N?work=WORK
-- (&wait=WAIT_MS unless 0) for 1000 values of N spread over 0..9999, each
-- wrk thread cycling through them from its own starting point. done() prints
-- one line that bench/load/run.sh parses (latencies in microseconds; non2xx:
-- answers with a status of 400 or more, as wrk counts them):
--   WRK requests=.. duration_us=.. non2xx=.. connect=.. read=.. write=..
--       timeout=.. p50_us=.. p90_us=.. p99_us=.. max_us=..
local reqs, i, threads = {}, 0, 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  local work, wait = args[1] or "250", args[2] or "0"
  for k = 0, 999 do
    local path = "/hash/" .. (k * 7919 % 10000) .. "?work=" .. work
    if wait ~= "0" then path = path .. "&wait=" .. wait end
    reqs[#reqs + 1] = wrk.format("GET", path)
  end
  i = ((id or 0) * 389) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
