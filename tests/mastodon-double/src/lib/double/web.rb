# frozen_string_literal: true

# Rack application of the Mastodon TEST DOUBLE (served by puma through config.ru). A handful of
# Mastodon's endpoints, each doing real work against PostgreSQL, Redis and Sidekiq so that tests
# of a deployment can see which host, database server and queue handled a request.
require 'digest'
require 'ipaddr'
require 'rack'
require 'securerandom'
require 'sidekiq'
require 'time'
require_relative '../../app/models/status'

module Double
  class Web
    # Rails' default trusted proxies; TRUSTED_PROXY_IP replaces them (as in Mastodon).
    DEFAULT_PROXIES = %w[127.0.0.0/8 ::1/128 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7].freeze

    def initialize
      list = ENV['TRUSTED_PROXY_IP'].to_s.split(/(?:\s*,\s*|\s+)/).reject(&:empty?)
      @proxies = (list.empty? ? DEFAULT_PROXIES : list).map { |ip| IPAddr.new(ip) }
      # config/application.rb:89 (v4.5.0 and v4.6.5): public/ is served only in development and
      # test, or when RAILS_SERVE_STATIC_FILES is exactly "true"; otherwise the proxy serves it.
      serve = %w[development test].include?(Double.env_name) || ENV['RAILS_SERVE_STATIC_FILES'] == 'true'
      @static = Rack::Files.new(File.join(ROOT, 'public')) if serve
    end

    def call(env)
      req = Rack::Request.new(env)
      route(req) || static(req) || json(404, error: 'Record not found')
    rescue JSON::ParserError
      json(400, error: 'Malformed JSON')
    end

    private

    def route(req)
      path, get, post = req.path_info, req.get? || req.head?, req.post?
      case path
      when '/health' then health if get
      when '/' then home if get
      when '/api/v1/instance' then instance if get
      when '/api/v1/double/whoami' then json(200, remote_ip: remote_ip(req), **served_by) if get
      when '/api/v1/double/tokens' then create_token(req) if post
      when '/oauth/revoke' then revoke_token(req) if post
      when '/api/v1/statuses' then create_status(req) if post
      when %r{\A/api/v1/statuses/(\d+)\z} then show_status(Regexp.last_match(1)) if get
      when %r{\A/api/v1/statuses/(\d+)/job\z} then show_job('status_id', Regexp.last_match(1)) if get
      when %r{\A/api/v1/jobs/([\w-]+)\z} then show_job('job_id', Regexp.last_match(1)) if get
      end
    end

    # app/controllers/health_controller.rb: a plain "OK" from the process, nothing checked
    # (neither PostgreSQL nor Redis), so a load balancer keeps a worker whose database is down.
    def health = [200, { 'content-type' => 'text/plain; charset=utf-8', 'cache-control' => 'private, no-store' }, ['OK']]

    # Which process answered and what code it loaded at boot (not what is on disk now).
    def served_by
      { host: Double.hostname, pid: Process.pid, ppid: Process.ppid, booted_at: Double.booted_at,
        loaded_at: Double::LOADED[:loaded_at], version: Double.version_string, revision: Double.revision }
    end

    def instance
      json(200, uri: ENV['LOCAL_DOMAIN'], domain: ENV['LOCAL_DOMAIN'], title: 'Mastodon (test double)',
                version: Double.version_string, double: true, cached_at: cached_at,
                urls: { streaming_api: ENV.fetch('STREAMING_API_BASE_URL') { "wss://#{Double.web_domain}" } },
                packs_digest: (Digest::SHA256.file(manifest_path).hexdigest if File.exist?(manifest_path)),
                served_by: served_by)
    end

    # DOUBLE-ONLY: an OAuth access token without OAuth (Mastodon issues them through Doorkeeper at
    # /oauth/token). `scopes` (default "read"), optional `username` (an existing account).
    def create_token(req)
      params = req.media_type == 'application/json' ? JSON.parse(req.body.read) : req.params
      scopes = params['scopes'].to_s.strip.empty? ? 'read' : params['scopes'].to_s.strip
      token = SecureRandom.urlsafe_base64(32)
      row = Double.db do |c|
        c.exec('INSERT INTO oauth_access_tokens (token, scopes, resource_owner_id) ' \
               'VALUES ($1, $2, (SELECT id FROM accounts WHERE username = $3)) RETURNING id, created_at',
               token, scopes, params['username']).first
      end
      json(200, access_token: token, token_type: 'Bearer', scope: scopes, created_at: Time.parse(row['created_at']).to_i)
    end

    # Doorkeeper's POST /oauth/revoke (token=...): always 200, as RFC 7009 says.
    def revoke_token(req)
      Double.db { |c| c.exec('UPDATE oauth_access_tokens SET revoked_at = now() WHERE token = $1 AND revoked_at IS NULL', req.params['token'].to_s) }
      json(200, {})
    end

    # Uses the cache Redis (CACHE_REDIS_*) like Rails.cache; errors are ignored, as Rails does.
    def cached_at
      Double.redis(:cache) do |r|
        r.get('cache:instance:cached_at') || Time.now.utc.iso8601.tap { |t| r.set('cache:instance:cached_at', t, ex: 300) }
      end
    rescue Redis::BaseError
      nil
    end

    def create_status(req)
      params = req.media_type == 'application/json' ? JSON.parse(req.body.read) : req.params
      return json(422, error: "Validation failed: Text can't be blank") if params['status'].to_s.strip.empty?

      queue = params['queue'].to_s.empty? ? 'default' : params['queue']
      return json(422, error: "Unknown queue #{queue} (one of #{QUEUES.join(', ')})") unless QUEUES.include?(queue)

      row = Status.create(params)
      jid = Sidekiq::Client.push('class' => 'Double::StatusWorker', 'queue' => queue, 'args' => [row['id'].to_i])
      status = Status.as_json(row)
      Double.redis { |r| r.publish('timeline:public', JSON.generate(event: 'update', payload: JSON.generate(status))) }
      json(200, status.merge(queue: queue, job_id: jid))
    end

    # Read from the replica when REPLICA_DB_NAME/REPLICA_DATABASE_URL is present; says which server answered.
    def show_status(id)
      row = Double.db(:replica) do |c|
        c.exec("SELECT #{Status::COLUMNS}, inet_server_addr()::text AS server_addr, inet_server_port() AS server_port, " \
               'pg_is_in_recovery() AS in_recovery FROM statuses WHERE id = $1', id).first
      end
      return json(404, error: 'Record not found') unless row

      json(200, Status.as_json(row).merge(served_by: { database: Double.replica? ? 'replica' : 'primary',
                                                      server_addr: row['server_addr'], server_port: row['server_port']&.to_i,
                                                      in_recovery: row['in_recovery'] == 't' }))
    end

    def show_job(column, value)
      row = Double.db { |c| c.exec("SELECT * FROM job_runs WHERE #{column} = $1 ORDER BY id DESC LIMIT 1", value).first }
      row ? json(200, row) : json(404, error: 'Record not found')
    end

    # Vite's manifest (vite.config.mts: build.manifest, outDir public/packs), read once per process
    # like vite_ruby does in production; a process started before assets:precompile reads it on
    # first use.
    def manifest_path = File.join(ROOT, 'public', 'packs', '.vite', 'manifest.json')
    def manifest = @manifest ||= JSON.parse(File.read(manifest_path))

    # The page needs precompiled assets, like Mastodon's: 500 until assets:precompile ran.
    def home
      entry, css = manifest.fetch('entrypoints/application.js'), manifest.fetch('styles/application.css')
      # app/controllers/application_controller.rb (set_cache_control_defaults): every page is
      # "private, no-store", so the edge's proxy cache never keeps one.
      [200, { 'content-type' => 'text/html; charset=utf-8', 'cache-control' => 'private, no-store' }, [<<~HTML]]
        <!DOCTYPE html>
        <html><head><title>#{ENV['LOCAL_DOMAIN']} (Mastodon test double #{Double.version})</title>
        <link rel="stylesheet" href="/packs/#{css['file']}" integrity="#{css['integrity']}">
        <script type="module" src="/packs/#{entry['file']}" integrity="#{entry['integrity']}"></script></head>
        <body><p>This is a test double of Mastodon, not Mastodon.</p></body></html>
      HTML
    rescue Errno::ENOENT, KeyError
      json(500, error: 'Assets are not precompiled: run RAILS_ENV=production bundle exec rails assets:precompile')
    end

    def static(req)
      return unless @static && (req.get? || req.head?) && !req.path_info.include?('..')

      file = File.join(ROOT, 'public', req.path_info)
      @static.call(req.env) if File.file?(file)
    end

    # ActionDispatch::RemoteIp: the right-most X-Forwarded-For address that is not a trusted proxy.
    def remote_ip(req)
      chain = req.get_header('HTTP_X_FORWARDED_FOR').to_s.split(',').map(&:strip).reject(&:empty?)
      chain << req.get_header('REMOTE_ADDR')
      chain.reverse.find { |ip| !trusted?(ip) } || chain.first
    end

    def trusted?(ip)
      addr = IPAddr.new(ip)
      @proxies.any? { |net| net.family == addr.family && net.include?(addr) }
    rescue IPAddr::Error
      false
    end

    def json(status, body)
      [status, { 'content-type' => 'application/json; charset=utf-8' }, [JSON.generate(body)]]
    end
  end
end
