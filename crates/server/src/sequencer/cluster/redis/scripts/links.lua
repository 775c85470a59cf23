-- KEYS: the room's links, epoch. ARGV: the room's channel, the generation the reset is from.
-- Nothing (nil) for a room without a history (it does not exist, or expired), or whose
-- generation moved on since the caller's token was checked (another reset was first).
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[2]) then return false end
local generation = redis.call('INCR', KEYS[1])
-- The generation lives exactly as long as the room: an expired room takes it along, and a
-- generation that expired alone would make the links it revoked valid again.
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('SPUBLISH', ARGV[1], 'L' .. generation)
return generation
