-- KEYS: epoch, snap, log. ARGV: epoch, seq, board, entries to keep before seq.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local at = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local seq = tonumber(ARGV[2])
if at >= seq then return 0 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[1], 'seq', ARGV[2], 'board', ARGV[3])
local keep_from = seq + 1 - tonumber(ARGV[4])
if keep_from > 1 then redis.call('XTRIM', KEYS[3], 'MINID', keep_from .. '-0') end
return 1
