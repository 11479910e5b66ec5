# frozen_string_literal: true

# Rack entry point of the Mastodon TEST DOUBLE (see README.md): `bundle exec puma -C config/puma.rb`.
require_relative 'config/environment'
require_relative 'lib/double/web'

use Rack::CommonLogger, $stdout
run Double::Web.new
