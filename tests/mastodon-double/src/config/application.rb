# frozen_string_literal: true

# Mastodon TEST DOUBLE: the Rails-like entry points. No Rails here; lib/double.rb is the app.
require_relative 'boot'
require_relative '../lib/double'
