# frozen_string_literal: true

# Same settings as Mastodon's config/puma.rb: `bundle exec puma -C config/puma.rb`.
threads_count = ENV.fetch('MAX_THREADS', 5).to_i
threads threads_count, threads_count

if ENV['SOCKET']
  bind "unix://#{ENV['SOCKET']}"
elsif ENV['PORT']
  port ENV.fetch('PORT'), ENV.fetch('BIND', '127.0.0.1')
else
  bind "tcp://#{ENV.fetch('BIND', '127.0.0.1')}:3000"
end

environment ENV.fetch('RAILS_ENV', 'development')
workers     ENV.fetch('WEB_CONCURRENCY', 2).to_i

# SIGUSR2 restarts; SIGUSR1 asks for a phased restart, which puma turns into a normal
# restart because of preload_app! (exactly what happens with Mastodon's config).
preload_app!

on_worker_boot do
  Double.reset_connections! if defined?(Double)
end

plugin :tmp_restart

persistent_timeout ENV.fetch('PERSISTENT_TIMEOUT', 20).to_i
