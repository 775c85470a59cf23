-- KEYS: epoch, seq, log, authors, the author's ring. ARGV: expected epoch, node's head, author,
-- op number, op, log cap, channel, deadline (ms on Redis's clock), ring length, the room's ttl
-- ms (0: none; the author's ring expires with the room, the other keys are kept alive by the
-- heartbeats of the nodes that hold the room).
local t = redis.call('TIME')
if t[1] * 1000 + math.floor(t[2] / 1000) > tonumber(ARGV[8]) then return {'late'} end
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost'} end
if epoch ~= ARGV[1] then return {'stale'} end
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
if head < tonumber(ARGV[2]) then return {'lost'} end
if tonumber(ARGV[4]) <= tonumber(redis.call('HGET', KEYS[4], ARGV[3]) or '0') then
  for _, e in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
    local n, e_epoch, seq = string.match(e, '^(%d+):(%d+):(%d+)$')
    if n == ARGV[4] and e_epoch == epoch then return {'dup', seq} end
  end
  return {'decided'}
end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], seq .. '-1',
           'a', ARGV[3], 'n', ARGV[4], 'o', ARGV[5])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
redis.call('LPUSH', KEYS[5], ARGV[4] .. ':' .. epoch .. ':' .. seq)
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[9]) - 1)
if tonumber(ARGV[10]) > 0 then redis.call('PEXPIRE', KEYS[5], ARGV[10]) end
redis.call('SPUBLISH', ARGV[7],
           'O' .. epoch .. '\n' .. seq .. '\n' .. ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. ARGV[5])
return {'ok', seq}
