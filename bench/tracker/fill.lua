-- wrk script: exactly BENCH_PEERS distinct peers, spread evenly over the torrents of
-- BENCH_HASHES, then the same peers again (re-announces add nothing). Run with one thread.
local hashes = {}
for line in io.lines(os.getenv("BENCH_HASHES")) do
  hashes[#hashes + 1] = line:gsub("%x%x", "%%%0")
end
local peers = tonumber(os.getenv("BENCH_PEERS"))
local n = 0

function request()
  local i = n % peers
  n = n + 1
  local torrent = i % #hashes
  local port = 1 + math.floor(i / #hashes)
  local id = string.format("-BENCH0-%012d", i)
  local path = "/announce?info_hash=" .. hashes[torrent + 1] .. "&peer_id=" .. id
    .. "&port=" .. port .. "&uploaded=0&downloaded=0&left=" .. (i % 2) * 1048576
    .. "&compact=1&numwant=50"
  return wrk.format("GET", path)
end
