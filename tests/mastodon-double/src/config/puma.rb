# frozen_string_literal: true

# Same settings as Mastodon's config/puma.rb (v4.5.0): `bundle exec puma -C config/puma.rb`.
persistent_timeout ENV.fetch('PERSISTENT_TIMEOUT', 20).to_i

max_threads_count = ENV.fetch('MAX_THREADS', 5).to_i
min_threads_count = ENV.fetch('MIN_THREADS', max_threads_count).to_i
threads min_threads_count, max_threads_count

if ENV['SOCKET']
  bind "unix://#{ENV['SOCKET']}"
else
  bind "tcp://#{ENV.fetch('BIND', '127.0.0.1')}:#{ENV.fetch('PORT', 3000)}"
end

environment ENV.fetch('RAILS_ENV', 'development')
workers     ENV.fetch('WEB_CONCURRENCY', 2).to_i

# The application (and its VERSION) is loaded once, in the master, before forking the workers.
# SIGUSR2 restarts; SIGUSR1 asks for a phased restart, which puma turns into a normal restart
# because of preload_app! (exactly what happens with Mastodon's config).
preload_app!

# config/puma.rb:19-44 at v4.6.5 (the same in v4.5): metrics only with the exporter enabled.
if ENV['MASTODON_PROMETHEUS_EXPORTER_ENABLED'] == 'true'
  require_relative '../lib/double/metrics'

  before_fork { Double::Metrics.local_server! } if ENV['MASTODON_PROMETHEUS_EXPORTER_LOCAL'] == 'true'
  on_worker_boot { Double::Metrics.process_stats!('puma') } # Puma 7: before_worker_boot
  after_worker_boot { Double::Metrics.puma_stats! } # runs in the master (after_worker_fork)
end

on_worker_boot do
  if defined?(Double)
    Double.reset_connections!
    Double.worker_booted!
  end
end

plugin :tmp_restart
