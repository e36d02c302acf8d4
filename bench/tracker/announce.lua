-- wrk script: announces from random peers to a fixed set of torrents.
--   BENCH_HASHES  file of 40-hex-digit info-hashes, one a line (the same list opentracker
--                 whitelists)
--   BENCH_CLOSE   "1": ask for a new connection per announce, as most clients do
-- Peers differ by port (both trackers key a peer by address and port; all come from
-- 127.0.0.1), peer_id and left (half seeders, half leechers). Everything is drawn per request.
local hashes = {}
for line in io.lines(os.getenv("BENCH_HASHES")) do
  hashes[#hashes + 1] = line:gsub("%x%x", "%%%0")
end
local close = os.getenv("BENCH_CLOSE") == "1"
local headers = close and { ["Connection"] = "close" } or {}

-- A pool of escaped random peer ids, made once per thread.
local ids = {}
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  threads[#threads + 1] = thread
end

function init(args)
  math.randomseed(os.time() * 7919 + (thread_id or 0) * 104729)
  for i = 1, 4096 do
    local t = {}
    for j = 1, 20 do t[j] = string.format("%%%02X", math.random(0, 255)) end
    ids[i] = table.concat(t)
  end
end

function request()
  local path = "/announce?info_hash=" .. hashes[math.random(#hashes)]
    .. "&peer_id=" .. ids[math.random(#ids)]
    .. "&port=" .. math.random(1, 65535)
    .. "&uploaded=0&downloaded=0&left=" .. (math.random(0, 1) * 1048576)
    .. "&compact=1&numwant=50&key=bench"
  return wrk.format("GET", path, headers)
end

-- Count non-200 answers and failure reasons so a refusing tracker cannot look fast.
failures = 0
function response(status, headers, body)
  if status ~= 200 or body:find("failure reason", 1, true) then
    failures = failures + 1
    if failures == 1 then io.stderr:write("first failure: " .. status .. " " .. body:sub(1, 200) .. "\n") end
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + (t:get("failures") or 0) end
  io.write(string.format("RESULT requests=%d rps=%.0f p50_us=%d p99_us=%d failures=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), failed))
end
