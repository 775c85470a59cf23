-- KEYS: members. ARGV: member, node, Joined frame, ttl ms, channel, message.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[4])) .. '|' .. ARGV[2] .. '|' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 3)
redis.call('SPUBLISH', ARGV[5], ARGV[6])
return 1
