-- KEYS: the room's private-history flag, epoch. ARGV: 1 (view links may read the room's
-- versions) or 0 (they may not). Nothing (nil) for a room without a history (it does not
-- exist, or expired).
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], '1')
  -- The flag lives exactly as long as the room.
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return 1
