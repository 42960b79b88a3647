-- wrk script for soak.py and bench_workers.py: POST a rotation of requests, one per
-- line of $BENCH_REQUESTS_FILE as "<path>\t<json body>", in order, round robin; print
-- one machine-readable line of results at the end (the format loadgen.py parses).
local requests = {}
for line in io.lines(os.getenv("BENCH_REQUESTS_FILE")) do
  local path, body = line:match("^([^\t]+)\t(.*)$")
  requests[#requests + 1] = {path = path, body = body}
end
local formatted = {}
local next_index = 0

-- formatted in init, not at load: wrk.host (the Host header) is only set by then
init = function(args)
  local headers = {["Host"] = wrk.host, ["Content-Type"] = "application/json"}
  for i, r in ipairs(requests) do
    formatted[i] = wrk.format("POST", r.path, headers, r.body)
  end
end

request = function()
  next_index = next_index % #formatted + 1
  return formatted[next_index]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, ' ..
    '"p50_us": %.0f, "p99_us": %.0f, "max_us": %.0f, "connect": %.0f, "read": %.0f, ' ..
    '"write": %.0f, "status": %.0f, "timeout": %.0f}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
