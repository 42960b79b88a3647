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

-- the shared result line, from the folder this script is in
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_result.lua")
