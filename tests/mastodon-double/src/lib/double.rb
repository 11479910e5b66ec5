# frozen_string_literal: true

# TEST DOUBLE of Mastodon (not Mastodon): configuration, PostgreSQL and Redis helpers shared by
# the web app (config.ru under puma), the Sidekiq workers, the rake tasks and bin/tootctl.
# It reads the same environment variables as Mastodon, with the same semantics where it matters:
# where Mastodon tests ENV.key? or uses ENV.fetch / ENV[..] ||, a variable that is present counts
# as set even when it is empty (Double.env below).
require 'erb'
require 'json'
require 'socket'
require 'time'
require 'pg'
require 'redis'
require 'connection_pool'

module Double
  ROOT = File.expand_path('..', __dir__)
  QUEUES = %w[default push ingress mailers pull scheduler fasp].freeze
  ENCRYPTION_KEYS = %w[ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY
                       ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT].freeze

  # The code's version and git revision, read ONCE when the process loads the application (puma's
  # master before it forks its workers, each Sidekiq process, each rake/tootctl run): a process
  # reports the code it runs, not what is on disk now. Mastodon compiles its version into the code.
  def self.read_revision
    head = File.read(File.join(ROOT, '.git', 'HEAD')).strip
    return head unless head.start_with?('ref: ')

    ref = head.delete_prefix('ref: ')
    loose = File.join(ROOT, '.git', ref)
    return File.read(loose).strip if File.file?(loose)

    File.foreach(File.join(ROOT, '.git', 'packed-refs')).map(&:split).find { |_, name| name == ref }&.first
  rescue SystemCallError
    nil
  end

  LOADED = { version: File.read(File.join(ROOT, 'VERSION')).strip.freeze, revision: read_revision&.freeze,
             loaded_at: Time.now.utc.iso8601(3).freeze }.freeze

  module_function

  def env_name = ENV.fetch('RAILS_ENV')
  # present? in Rails' sense: set and not empty. Used for the double's own required settings only.
  def present?(key) = !ENV[key].to_s.empty?
  # ENV.fetch semantics: a present variable wins even when empty, as in Mastodon's initializers.
  def env(key, default = nil) = ENV.fetch(key, default)
  def hostname = Socket.gethostname
  def version = LOADED[:version]
  def revision = LOADED[:revision]
  def version_string = "#{version}+double"
  # config/initializers/1_hosts.rb: ENV.fetch('WEB_DOMAIN') { LOCAL_DOMAIN }
  def web_domain = ENV.fetch('WEB_DOMAIN') { ENV.fetch('LOCAL_DOMAIN', nil) }

  # When this process (a puma worker: set again after the fork) started serving.
  def booted_at = @booted_at ||= LOADED[:loaded_at]
  def worker_booted! = @booted_at = Time.now.utc.iso8601(3)

  # Like Mastodon, which loads .env files with the dotenv gem (Gemfile: gem 'dotenv'; dotenv 3's
  # Rails integration): .env.<RAILS_ENV>.local, .env.local (not in test), .env.<RAILS_ENV>, .env,
  # the first file that sets a variable wins and the process environment wins over all of them.
  # Debian's ruby-dotenv (2.4) is the same parser, older than upstream's 3.1.
  def load_dotenv!
    return if @dotenv_loaded

    require 'dotenv'
    files = [".env.#{env_name}.local", ('.env.local' unless env_name == 'test'), ".env.#{env_name}", '.env'].compact
    Dotenv.load(*files.map { |name| File.join(ROOT, name) })
    @dotenv_loaded = true
  end

  # Mastodon aborts at boot without its secrets; the double is also strict about the database
  # and Redis (Mastodon would fall back to localhost), so that a role that forgets them fails.
  def missing_settings
    missing = (%w[LOCAL_DOMAIN SECRET_KEY_BASE] + ENCRYPTION_KEYS).reject { |key| present?(key) }
    missing << 'DATABASE_URL or DB_HOST+DB_NAME+DB_USER' unless present?('DATABASE_URL') || %w[DB_HOST DB_NAME DB_USER].all? { |k| present?(k) }
    missing << 'REDIS_URL or REDIS_HOST' unless present?('REDIS_URL') || present?('REDIS_HOST')
    missing << 'S3_BUCKET (S3_ENABLED=true)' if ENV['S3_ENABLED'] == 'true' && !present?('S3_BUCKET')
    missing
  end

  def check_config!
    missing = missing_settings
    return if missing.empty?

    abort "Mastodon (test double) refuses to start: missing #{missing.join(', ')}. " \
          "Set them in #{File.join(ROOT, ".env.#{env_name}")} or in the environment."
  end

  # Boots the application: what config/environment.rb does for web, sidekiq and rake.
  def boot!
    load_dotenv!
    check_config!
    # config/initializers/deprecations.rb:26 (ENV.key?): present, even empty, means the old name is used.
    warn 'WARNING: The environment variable WHITELIST_MODE has been replaced with LIMITED_FEDERATION_MODE. Please update your configuration.' if ENV.key?('WHITELIST_MODE')
    require 'sidekiq'
    url = redis_url('SIDEKIQ_')
    Sidekiq.configure_client { |config| config.redis = { url: url } }
    return unless Sidekiq.server?

    require_relative 'double/worker'
    require_relative 'double/metrics'
    Sidekiq.configure_server do |config|
      config.redis = { url: url }
      sidekiq_config[:tag] ||= File.basename(ROOT) # Rails apps get the app directory's name
      config.server_middleware { |chain| chain.add QueueName }
      Metrics.sidekiq!(config)
    end
    concurrency = sidekiq_config[:concurrency].to_i
    return if pool_size >= concurrency

    warn "WARNING: DB_POOL=#{pool_size} is lower than the Sidekiq concurrency #{concurrency}: " \
         'jobs will wait for database connections and time out (ActiveRecord::ConnectionTimeoutError in Mastodon)'
  end

  def sidekiq_config = Sidekiq.respond_to?(:default_configuration) ? Sidekiq.default_configuration : Sidekiq.options

  # --- PostgreSQL -----------------------------------------------------------------------------
  # app/helpers/database_helper.rb:5: the replica is used when REPLICA_DB_NAME or
  # REPLICA_DATABASE_URL is present (not REPLICA_DB_HOST alone).
  def replica? = ENV.key?('REPLICA_DB_NAME') || ENV.key?('REPLICA_DATABASE_URL')
  def prepared_statements? = ENV.fetch('PREPARED_STATEMENTS', 'true') != 'false'

  # Arguments for PG.connect, as config/database.yml builds them (production): sslmode
  # ENV['DB_SSLMODE'] || 'prefer' (libpq's prefer falls back to a plain connection); the replica
  # takes REPLICA_DB_X || DB_X (Ruby's ||: an empty REPLICA_ value is used as is).
  def pg_params(role = :primary)
    r = role == :replica ? 'REPLICA_' : ''
    opts = { connect_timeout: 5, application_name: "mastodon-double #{File.basename($PROGRAM_NAME)}",
             sslmode: ENV['DB_SSLMODE'] || 'prefer' }
    return [ENV["#{r}DATABASE_URL"], opts] if present?("#{r}DATABASE_URL")

    db = ->(key, default = nil) { ENV["#{r}DB_#{key}"] || ENV.fetch("DB_#{key}", default) }
    [opts.merge(host: db.call('HOST'), port: db.call('PORT', '5432'), dbname: db.call('NAME'),
                user: db.call('USER'), password: db.call('PASS')).compact]
  end

  def connect(role = :primary, **extra)
    args = pg_params(role)
    args[-1] = args.last.merge(extra)
    PG.connect(*args)
  end

  # Like Mastodon's database.yml: DB_POOL, else Sidekiq's concurrency or MAX_THREADS, else 5.
  def pool_size
    default = defined?(Sidekiq) && Sidekiq.server? ? sidekiq_config[:concurrency] : ENV['MAX_THREADS']
    Integer(ENV['DB_POOL'] || default || 5)
  end

  # Runs the block with a pooled connection; :replica falls back to the primary when none is set.
  def db(role = :primary, &block)
    role = :primary unless role == :replica && replica?
    (@pools ||= {})[role] ||= ConnectionPool.new(size: pool_size, timeout: 5) { Conn.new(role) }
    @pools[role].with(&block)
  end

  # Called in each forked puma worker: connections are never shared across processes.
  def reset_connections!
    @pools = nil
    @redis = nil
  end

  # One PostgreSQL connection; prepared statements unless PREPARED_STATEMENTS=false (they fail
  # behind a transaction-mode pooler without prepared-statement support, as Mastodon's do).
  class Conn
    def initialize(role)
      @role = role
    end

    # A connection that the server dropped (restart, failover) is replaced once, like
    # ActiveRecord's reconnect; an error on a fresh connection is raised.
    def exec(sql, *params)
      reused = !@pg.nil? && !@pg.finished? && @pg.status == PG::CONNECTION_OK
      reconnect unless reused
      run(sql, params)
    rescue PG::ConnectionBad, PG::UnableToSend
      raise unless reused

      reused = false
      reconnect
      run(sql, params)
    end

    private

    def reconnect
      @pg&.close unless @pg&.finished?
      @pg = Double.connect(@role)
      @prepared = {}
    end

    def run(sql, params)
      return @pg.exec_params(sql, params).to_a unless Double.prepared_statements?

      unless (name = @prepared[sql])
        name = "a#{@prepared.size + 1}"
        @pg.prepare(name, sql)
        @prepared[sql] = name
      end
      @pg.exec_prepared(name, params).to_a
    end
  end

  # --- Redis ----------------------------------------------------------------------------------
  # REDIS_URL, else REDIS_HOST/PORT/USER/PASSWORD/DB; CACHE_ and SIDEKIQ_ variants fall back to
  # the main settings when none of theirs is set (Mastodon's RedisConfiguration).
  def redis_url(prefix = '')
    prefix = '' unless %w[URL HOST PORT USER PASSWORD].any? { |k| present?("#{prefix}REDIS_#{k}") }
    return ENV["#{prefix}REDIS_URL"] if present?("#{prefix}REDIS_URL")

    user, pass = ENV["#{prefix}REDIS_USER"].to_s, ENV["#{prefix}REDIS_PASSWORD"].to_s
    auth = pass.empty? ? '' : "#{ERB::Util.url_encode(user)}:#{ERB::Util.url_encode(pass)}@"
    "redis://#{auth}#{ENV.fetch("#{prefix}REDIS_HOST", 'localhost')}:#{ENV.fetch("#{prefix}REDIS_PORT", '6379')}" \
      "/#{ENV.fetch("#{prefix}REDIS_DB", '0')}"
  end

  def redis(kind = :main, &block)
    (@redis ||= {})[kind] ||= ConnectionPool.new(size: Integer(ENV.fetch('MAX_THREADS', 5)), timeout: 5) do
      Redis.new(url: redis_url(kind == :cache ? 'CACHE_' : ''), timeout: 2)
    end
    @redis[kind].with(&block)
  end
end
