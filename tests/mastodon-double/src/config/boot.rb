# frozen_string_literal: true

# As in a Rails app: use the Gemfile next to this directory, whatever the working directory.
ENV['BUNDLE_GEMFILE'] ||= File.expand_path('../Gemfile', __dir__)
require 'bundler/setup'
