-- KEYS: members. ARGV: member, channel, message.
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SPUBLISH', ARGV[2], ARGV[3])
return 1
