-- KEYS: epoch, seq, log, snap, members. ARGV: after ('' = the snapshot's seq), count, full,
-- bytes of entries at most (the first entry is returned whatever its size).
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {''} end
local seq = redis.call('GET', KEYS[2]) or '0'
local full = ARGV[3] == '1'
local snap = redis.call('HMGET', KEYS[4], 'epoch', 'seq', full and 'board' or 'seq')
local after = ARGV[1]
if after == '' then after = snap[2] or '0' end
local entries = redis.call('XRANGE', KEYS[3], '(' .. after .. '-1', '+', 'COUNT', ARGV[2])
local budget = tonumber(ARGV[4])
local size, kept = 0, {}
for i = 1, #entries do
  for _, f in ipairs(entries[i][2]) do size = size + #f end
  if i > 1 and size > budget then break end
  kept[i] = entries[i]
end
entries = kept
local members = {}
if full then members = redis.call('HGETALL', KEYS[5]) end
local t = redis.call('TIME')
return {epoch, seq, snap[1] or '', snap[2] or '', full and (snap[3] or '') or '', entries,
        members, t[1] * 1000 + math.floor(t[2] / 1000)}
