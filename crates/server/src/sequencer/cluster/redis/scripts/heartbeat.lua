-- KEYS: members, then the room's epoch, seq, log, snap, authors, links, versions, their
-- listings and boards, its private-history flag, and its images, their types and their
-- total. ARGV: ttl ms, node, the room's
-- ttl ms (0: none), then member/frame pairs of this node.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expiry = now + tonumber(ARGV[1])
if tonumber(ARGV[3]) > 0 then
  for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], expiry .. '|' .. ARGV[2] .. '|' .. ARGV[i + 1])
end
if #ARGV > 3 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 3) end
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local until_ms = tonumber(string.match(all[i + 1], '^(%d+)|'))
  if until_ms and until_ms >= now then
    live[#live + 1] = all[i]
    live[#live + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return live
