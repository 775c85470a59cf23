-- KEYS: the room's images (hash: SHA-256 → bytes), their types (hash: SHA-256 → media type),
-- their bytes together (string), epoch. ARGV: the image's SHA-256 (lowercase hex), its media
-- type, its bytes, the room's budget (bytes).
-- Returns nothing (nil) for a room without a history (it does not exist, or expired), 0 when
-- the room holds these bytes already (nothing counted again), 1 when they are kept now, 2 when
-- keeping them would take the room's images past the budget (nothing written).
if redis.call('EXISTS', KEYS[4]) == 0 then return false end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if tonumber(redis.call('GET', KEYS[3]) or '0') + #ARGV[3] > tonumber(ARGV[4]) then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('INCRBY', KEYS[3], #ARGV[3])
-- The images live exactly as long as the room.
local ttl = redis.call('PTTL', KEYS[4])
if ttl > 0 then for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end end
return 1
