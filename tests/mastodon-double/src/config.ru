# frozen_string_literal: true

# Rack entry point of the Mastodon TEST DOUBLE (see README.md): `bundle exec puma -C config/puma.rb`.
require_relative 'config/environment'
require_relative 'lib/double/web'

# config/initializers/prometheus_exporter.rb: the metrics middleware comes first in the stack.
if ENV['MASTODON_PROMETHEUS_EXPORTER_ENABLED'] == 'true'
  require_relative 'lib/double/metrics'
  use Double::Metrics::Middleware
end
use Rack::CommonLogger, $stdout
run Double::Web.new
