-- KEYS: epoch, seq, log, snap. ARGV: mode, new epoch, board, known epoch, known head, channel.
local cur = redis.call('GET', KEYS[1])
if cur then
  if ARGV[1] == 'init' then return cur end
  local head = tonumber(redis.call('GET', KEYS[2]) or '0')
  if cur ~= ARGV[4] or head >= tonumber(ARGV[5]) then return cur end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], '0')
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HSET', KEYS[4], 'epoch', ARGV[2], 'seq', '0', 'board', ARGV[3])
redis.call('PUBLISH', ARGV[6], 'E' .. ARGV[2])
return ARGV[2]
