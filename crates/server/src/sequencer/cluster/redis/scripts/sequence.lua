-- KEYS: epoch, seq, log. ARGV: expected epoch, node's head, author, op, log cap, channel.
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost'} end
if epoch ~= ARGV[1] then return {'stale'} end
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
if head < tonumber(ARGV[2]) then return {'lost'} end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], seq .. '-1', 'a', ARGV[3], 'o', ARGV[4])
redis.call('PUBLISH', ARGV[6], 'O' .. epoch .. '\n' .. seq .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return {'ok', seq}
