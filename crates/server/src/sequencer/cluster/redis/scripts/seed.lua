-- KEYS: epoch, seq, log, snap. ARGV: mode, new epoch, board, known epoch, known head, channel,
-- the room's ttl ms (0: none).
-- Modes: 'init' only if the room has no history; 'reseed' only if the history the node knows
-- is still lost (absent, or behind the node's head); 'fork' only if the history is still the
-- one the node knows (it went back in time under the node, which must not resume onto it).
local cur = redis.call('GET', KEYS[1])
if cur then
  if ARGV[1] == 'init' then return cur end
  if cur ~= ARGV[4] then return cur end
  if ARGV[1] == 'reseed' then
    local head = tonumber(redis.call('GET', KEYS[2]) or '0')
    if head >= tonumber(ARGV[5]) then return cur end
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], '0')
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HSET', KEYS[4], 'epoch', ARGV[2], 'seq', '0', 'board', ARGV[3])
if tonumber(ARGV[7]) > 0 then
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
end
redis.call('SPUBLISH', ARGV[6], 'E' .. ARGV[2])
return ARGV[2]
