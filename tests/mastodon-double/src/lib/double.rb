# frozen_string_literal: true

# TEST DOUBLE of Mastodon (not Mastodon): configuration, PostgreSQL and Redis helpers shared by
# the web app (config.ru under puma), the Sidekiq workers, the rake tasks and bin/tootctl.
# It reads the same environment variables as Mastodon, with the same defaults where it matters.
require 'erb'
require 'json'
require 'socket'
require 'pg'
require 'redis'
require 'connection_pool'

module Double
  ROOT = File.expand_path('..', __dir__)
  QUEUES = %w[default push ingress mailers pull scheduler fasp].freeze
  ENCRYPTION_KEYS = %w[ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY
                       ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT].freeze

  module_function

  def env_name = ENV.fetch('RAILS_ENV', 'development')
  def set?(key) = !ENV[key].to_s.empty?
  def hostname = Socket.gethostname
  def version = File.read(File.join(ROOT, 'VERSION')).strip
  def version_string = "#{version}+double"
  def web_domain = ENV['WEB_DOMAIN'].to_s.empty? ? ENV['LOCAL_DOMAIN'] : ENV['WEB_DOMAIN']

  # Like dotenv in Mastodon: .env.<RAILS_ENV>, then .env; a variable already in the environment wins.
  def load_dotenv!
    [".env.#{env_name}", '.env'].map { |name| File.join(ROOT, name) }.select { |f| File.file?(f) }.each do |file|
      File.foreach(file) do |line|
        next unless line =~ /\A\s*(?:export\s+)?([A-Za-z_]\w*)\s*=\s*(.*?)\s*\z/

        key, value = Regexp.last_match(1), Regexp.last_match(2)
        value = value =~ /\A(["'])(.*)\1\z/ ? Regexp.last_match(2) : value.sub(/\s+#.*\z/, '')
        ENV[key] = value unless ENV.key?(key)
      end
    end
  end

  # Mastodon aborts at boot without its secrets; the double is also strict about the database
  # and Redis (Mastodon would fall back to localhost), so that a role that forgets them fails.
  def missing_settings
    missing = (%w[LOCAL_DOMAIN SECRET_KEY_BASE] + ENCRYPTION_KEYS).reject { |key| set?(key) }
    missing << 'DATABASE_URL or DB_HOST+DB_NAME+DB_USER' unless set?('DATABASE_URL') || %w[DB_HOST DB_NAME DB_USER].all? { |k| set?(k) }
    missing << 'REDIS_URL or REDIS_HOST' unless set?('REDIS_URL') || set?('REDIS_HOST')
    missing << 'S3_BUCKET (S3_ENABLED=true)' if ENV['S3_ENABLED'] == 'true' && !set?('S3_BUCKET')
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
    require 'sidekiq'
    url = redis_url('SIDEKIQ_')
    Sidekiq.configure_client { |config| config.redis = { url: url } }
    return unless Sidekiq.server?

    require_relative 'double/worker'
    Sidekiq.configure_server do |config|
      config.redis = { url: url }
      sidekiq_config[:tag] ||= File.basename(ROOT) # Rails apps get the app directory's name
      config.server_middleware { |chain| chain.add QueueName }
    end
    concurrency = sidekiq_config[:concurrency].to_i
    return if pool_size >= concurrency

    warn "WARNING: DB_POOL=#{pool_size} is lower than the Sidekiq concurrency #{concurrency}: " \
         'jobs will wait for database connections and time out (ActiveRecord::ConnectionTimeoutError in Mastodon)'
  end

  def sidekiq_config = Sidekiq.respond_to?(:default_configuration) ? Sidekiq.default_configuration : Sidekiq.options

  # --- PostgreSQL -----------------------------------------------------------------------------
  def replica? = set?('REPLICA_DATABASE_URL') || set?('REPLICA_DB_HOST')
  def prepared_statements? = ENV.fetch('PREPARED_STATEMENTS', 'true') != 'false'

  # Arguments for PG.connect; role :replica uses REPLICA_* and falls back to DB_* (as database.yml does).
  def pg_params(role = :primary)
    r = role == :replica ? 'REPLICA_' : ''
    opts = { connect_timeout: 5, application_name: "mastodon-double #{File.basename($PROGRAM_NAME)}" }
    opts[:sslmode] = ENV['DB_SSLMODE'] if set?('DB_SSLMODE')
    return [ENV["#{r}DATABASE_URL"], opts] if set?("#{r}DATABASE_URL")

    db = ->(key, default = nil) { ENV["#{r}DB_#{key}"].to_s.empty? ? ENV.fetch("DB_#{key}", default) : ENV["#{r}DB_#{key}"] }
    [opts.merge(host: db.call('HOST'), port: db.call('PORT', '5432'), dbname: db.call('NAME'),
                user: db.call('USER'), password: db.call('PASS')).compact]
  end

  def connect(role = :primary) = PG.connect(*pg_params(role))

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
    prefix = '' unless %w[URL HOST PORT USER PASSWORD].any? { |k| set?("#{prefix}REDIS_#{k}") }
    return ENV["#{prefix}REDIS_URL"] if set?("#{prefix}REDIS_URL")

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
