-- KEYS: the room's versions (sorted set: "epoch:seq" by id), their listings (hash: id → JSON),
-- their boards (hash: id → board), epoch. ARGV: "epoch:seq", id (ms), listing, board, versions
-- kept, bytes kept, the interval (ms; 0: none), whether it is kept before a Clear (1/0).
-- Each node holding the room decides alike when a version is due, so one place is kept once,
-- and an interval version comes to nothing when another node kept one less than half an
-- interval before. Returns the id it was kept under, or nothing.
if redis.call('EXISTS', KEYS[4]) == 0 then return false end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return false end
local id = tonumber(ARGV[2])
local newest = redis.call('ZRANGE', KEYS[1], 0, 0, 'REV', 'WITHSCORES')
if ARGV[8] == '0' and newest[2] and tonumber(newest[2]) > id - tonumber(ARGV[7]) / 2 then
  return false
end
while redis.call('HEXISTS', KEYS[2], tostring(id)) == 1 do id = id + 1 end
local listing = string.gsub(ARGV[3], '^{"id":%d+', '{"id":' .. id)
redis.call('ZADD', KEYS[1], id, ARGV[1])
redis.call('HSET', KEYS[2], tostring(id), listing)
redis.call('HSET', KEYS[3], tostring(id), ARGV[4])
-- The oldest go while too many are kept, or they weigh too much.
local kept, bytes_kept = tonumber(ARGV[5]), tonumber(ARGV[6])
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local count, bytes = #all / 2, 0
for i = 2, #all, 2 do bytes = bytes + redis.call('HSTRLEN', KEYS[3], all[i]) end
for i = 1, #all, 2 do
  if count <= kept and bytes <= bytes_kept then break end
  local old = all[i + 1]
  bytes = bytes - redis.call('HSTRLEN', KEYS[3], old)
  redis.call('ZREM', KEYS[1], all[i])
  redis.call('HDEL', KEYS[2], old)
  redis.call('HDEL', KEYS[3], old)
  count = count - 1
end
-- The versions live exactly as long as the room.
local ttl = redis.call('PTTL', KEYS[4])
if ttl > 0 then for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end end
return id
