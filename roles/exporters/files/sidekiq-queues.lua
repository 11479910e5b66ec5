-- Sidekiq's queues and dead set, read from its Redis for Prometheus (the redis exporter's -script):
-- each queue's latency as Sidekiq::Queue#latency computes it (now minus enqueued_at of the oldest
-- job, the list's tail; seconds in Sidekiq 7, milliseconds in 8), its size, and the dead set's size.
-- Read from Redis, a queue's latency is known even when every process that works it is down.
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local out = {}
for _, q in ipairs(redis.call('SMEMBERS', 'queues')) do
  local latency = 0
  local job = redis.call('LINDEX', 'queue:' .. q, -1)
  if job then
    local ok, decoded = pcall(cjson.decode, job)
    local at = ok and tonumber(decoded['enqueued_at'])
    if at then
      if at > 100000000000 then at = at / 1000 end
      latency = math.max(t - at, 0)
    end
  end
  table.insert(out, 'sidekiq_queue_latency_seconds:' .. q)
  table.insert(out, string.format('%.3f', latency))
  table.insert(out, 'sidekiq_queue_size:' .. q)
  table.insert(out, tostring(redis.call('LLEN', 'queue:' .. q)))
end
table.insert(out, 'sidekiq_dead_size')
table.insert(out, tostring(redis.call('ZCARD', 'dead')))
return out
