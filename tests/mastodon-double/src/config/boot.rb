# frozen_string_literal: true

# Like Mastodon's config/boot.rb:3 (v4.5.0): refuses to run unless RAILS_ENV is present in the
# environment (ENV.key?: an empty value counts as set); .env files cannot provide it.
abort 'The RAILS_ENV environment variable is not set (use "production" for a live deployment).' unless ENV.key?('RAILS_ENV')

ENV['BUNDLE_GEMFILE'] ||= File.expand_path('../Gemfile', __dir__)
require 'bundler/setup'
