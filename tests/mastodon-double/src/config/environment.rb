# frozen_string_literal: true

# Loaded by config.ru (puma), by Sidekiq (see config/sidekiq.yml) and by the rake tasks that need
# the database: reads .env.<RAILS_ENV>, refuses to start without the required settings.
require_relative 'application'
Double.boot!
