-- wrk script of benches/run.sh. Rotates the Authorization header over the
-- tokens in BENCH_TOKENS (space-separated) or sends BENCH_COOKIE; replaces
-- {id} in BENCH_PATH by a random customer id up to BENCH_MAX_ID; prints one
-- machine-readable line at the end:
--   BENCH requests duration_us p50_us p99_us non2xx socket_errors
local tokens = {}
for t in string.gmatch(os.getenv("BENCH_TOKENS") or "", "%S+") do
  tokens[#tokens + 1] = t
end
local cookie = os.getenv("BENCH_COOKIE")
local template = os.getenv("BENCH_PATH") or "/"
local max_id = tonumber(os.getenv("BENCH_MAX_ID") or "1000000")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("offset", #threads * 7919)
  threads[#threads + 1] = thread
end

function init(args)
  counter = offset or 0
  math.randomseed(counter + 1)
end

function request()
  counter = counter + 1
  local headers = {}
  if #tokens > 0 then
    headers["Authorization"] = "Token " .. tokens[(counter % #tokens) + 1]
  end
  if cookie and cookie ~= "" then
    headers["Cookie"] = cookie
  end
  local path = string.gsub(template, "{id}", tostring(math.random(1, max_id)))
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
