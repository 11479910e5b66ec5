# frozen_string_literal: true

# tootctl of the Mastodon TEST DOUBLE: the subcommands deployment roles call, each doing a small
# real thing against the database, Redis or media storage. Unknown commands and options exit 1.
require 'digest'
require 'net/http'
require 'optparse'
require 'securerandom'
require_relative 'storage'

module Double
  class Tootctl
    ROLES = %w[Owner Admin Moderator].freeze
    USAGE = <<~TEXT
      Commands (Mastodon test double):
        tootctl version
        tootctl accounts create USERNAME --email EMAIL [--confirmed] [--role ROLE] [--approve]
        tootctl accounts modify USERNAME [--role ROLE] [--confirm] [--approve] [--disable|--enable] [--reset-password]
        tootctl feeds build
        tootctl media remove [--days N] [--dry-run]
        tootctl media remove-orphans [--dry-run]
        tootctl preview_cards remove [--days N] [--dry-run]
        tootctl cache clear
        tootctl search deploy
        tootctl settings registrations open|close|approved
    TEXT

    COMMANDS = {
      %w[accounts create] => :accounts_create, %w[accounts modify] => :accounts_modify, %w[feeds build] => :feeds_build,
      %w[media remove] => :media_remove, %w[media remove-orphans] => :media_remove_orphans,
      %w[preview_cards remove] => :preview_cards_remove, %w[cache clear] => :cache_clear,
      %w[search deploy] => :search_deploy, %w[settings registrations] => :settings_registrations
    }.freeze

    def run(argv)
      return puts(Double.version_string) || 0 if argv == ['version']
      return puts(USAGE) || 0 if argv.empty? || %w[help -h --help].include?(argv.first)

      method = COMMANDS[argv.first(2)]
      return fail!("Could not find command #{argv.first(2).join(' ').inspect}.\n#{USAGE}") unless method

      Double.check_config!
      result = send(method, argv.drop(2))
      result.is_a?(Integer) ? result : 0
    rescue OptionParser::ParseError => e
      fail!(e.message)
    end

    private

    def fail!(message)
      warn message
      1
    end

    def options(args, spec)
      opts = {}
      OptionParser.new { |o| spec.each { |s| o.on(*s) } }.parse!(args, into: opts)
      opts
    end

    def sql(query, *params) = Double.db { |c| c.exec(query, *params) }

    def accounts_create(args)
      opts = options(args, [['--email EMAIL'], ['--confirmed'], ['--role ROLE'], ['--approve'], ['--skip-sign-in-token'], ['--reattach'], ['--force']])
      username = args.first or return fail!('No value provided for required arguments USERNAME')
      return fail!("No value provided for required options '--email'") unless opts[:email]
      return fail!('Cannot find user role with that name') if opts[:role] && !ROLES.include?(opts[:role])

      password = SecureRandom.hex
      sql('INSERT INTO accounts (username, email, role, confirmed, approved, password_digest) VALUES ($1, $2, $3, $4, true, $5)',
          username, opts[:email], opts[:role], opts[:confirmed] ? 'true' : 'false', Digest::SHA256.hexdigest(password))
      puts 'OK'
      puts "New password: #{password}"
    rescue PG::UniqueViolation => e
      fail!("Failure/Error: #{e.message[/Key \((\w+)\)/, 1] || 'username'}\n    has already been taken")
    end

    def accounts_modify(args)
      opts = options(args, [['--role ROLE'], ['--remove-role'], ['--confirm'], ['--approve'], ['--disable'], ['--enable'],
                            ['--reset-password'], ['--email EMAIL'], ['--disable-2fa']])
      username = args.first or return fail!('No value provided for required arguments USERNAME')
      return fail!('Cannot find user role with that name') if opts[:role] && !ROLES.include?(opts[:role])

      sets = { 'role' => opts[:role], 'email' => opts[:email], 'confirmed' => ('true' if opts[:confirm]),
               'approved' => ('true' if opts[:approve]), 'disabled' => (opts[:disable] ? 'true' : ('false' if opts[:enable])) }.compact
      sets['role'] = nil if opts[:'remove-role']
      password = SecureRandom.hex if opts[:'reset-password']
      sets['password_digest'] = Digest::SHA256.hexdigest(password) if password
      assignments = sets.keys.each_with_index.map { |col, i| "#{col} = $#{i + 2}" }
      assignments = ['username = username'] if assignments.empty?
      found = sql("UPDATE accounts SET #{assignments.join(', ')} WHERE username = $1 RETURNING id", username, *sets.values)
      return fail!('No user with such username') if found.empty?

      puts 'OK'
      puts "New password: #{password}" if password
    end

    # Rebuilds every account's home feed in Redis (feed:home:ID, a sorted set of status ids).
    def feeds_build(args)
      options(args, [['--all'], ['--concurrency N', Integer], ['--verbose'], ['--dry-run']])
      statuses = sql('SELECT id FROM statuses ORDER BY id DESC LIMIT 400').map { |r| r['id'].to_i }
      accounts = sql('SELECT id FROM accounts').map { |r| r['id'] }
      Double.redis do |r|
        accounts.each do |id|
          r.del("feed:home:#{id}")
          r.zadd("feed:home:#{id}", statuses.map { |s| [s, s.to_s] }) unless statuses.empty?
        end
      end
      puts "Regenerated feeds for #{accounts.size} account(s) with #{statuses.size} status(es)"
    end

    # Removes stored media of statuses older than --days (default 7).
    def media_remove(args)
      opts = options(args, [['--days N', Integer], ['--concurrency N', Integer], ['--dry-run'], ['--verbose'],
                            ['--prune-profiles'], ['--remove-headers'], ['--include-follows']])
      rows = sql("SELECT id, media_key FROM job_runs WHERE media_key IS NOT NULL AND media_removed_at IS NULL AND ran_at < now() - ($1 || ' days')::interval",
                 opts.fetch(:days, 7))
      rows.each do |row|
        next if opts[:'dry-run']

        Storage.delete(row['media_key'])
        sql('UPDATE job_runs SET media_removed_at = now() WHERE id = $1', row['id'])
      end
      puts "Removed #{rows.size} media attachment(s)#{' (DRY RUN)' if opts[:'dry-run']}"
    end

    # Removes stored objects that no job_runs row refers to.
    def media_remove_orphans(args)
      opts = options(args, [['--start-after KEY'], ['--prefix PREFIX'], ['--fix-permissions'], ['--dry-run']])
      known = sql('SELECT media_key FROM job_runs WHERE media_key IS NOT NULL AND media_removed_at IS NULL').map { |r| r['media_key'] }
      orphans = Storage.list.reject { |key, _| known.include?(key) }
      orphans.each { |key, _| Storage.delete(key) } unless opts[:'dry-run']
      puts "Visited #{known.size + orphans.size} objects, removed #{orphans.size} orphans " \
           "(approx. #{orphans.sum { |_, size| size }} bytes)#{' (DRY RUN)' if opts[:'dry-run']}"
    end

    def preview_cards_remove(args)
      opts = options(args, [['--days N', Integer], ['--concurrency N', Integer], ['--dry-run'], ['--link'], ['--verbose']])
      verb = opts[:'dry-run'] ? 'SELECT id FROM' : 'DELETE FROM'
      removed = sql("#{verb} preview_cards WHERE created_at < now() - ($1 || ' days')::interval#{' RETURNING id' unless opts[:'dry-run']}",
                    opts.fetch(:days, 180))
      puts "Removed #{removed.size} preview cards#{' (DRY RUN)' if opts[:'dry-run']}"
    end

    # Rails.cache.clear on the cache Redis: deletes the cache:* keys.
    def cache_clear(_args)
      removed = Double.redis(:cache) { |r| r.scan_each(match: 'cache:*').each_slice(100).sum { |keys| r.del(*keys) } }
      puts "OK (#{removed} cache entries removed)"
    end

    def search_deploy(args)
      options(args, [['--batch-size N', Integer], ['--only INDEX'], ['--concurrency N', Integer], ['--reset-chewy'], ['--import'], ['--clean']])
      return puts('Elasticsearch is disabled (ES_ENABLED is not true): nothing to deploy') unless ENV['ES_ENABLED'] == 'true'

      host = ENV.fetch('ES_HOST', 'localhost')
      uri = URI("#{host.start_with?('http') ? host : "http://#{host}"}:#{ENV.fetch('ES_PORT', '9200')}/_cluster/health")
      req = Net::HTTP::Get.new(uri)
      req.basic_auth(ENV['ES_USER'], ENV['ES_PASS']) if Double.set?('ES_USER')
      res = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == 'https', open_timeout: 5, read_timeout: 5) { |http| http.request(req) }
      return fail!("Elasticsearch at #{uri.host}:#{uri.port} answered #{res.code}") unless res.is_a?(Net::HTTPSuccess)

      puts "Elasticsearch at #{uri.host}:#{uri.port} is #{JSON.parse(res.body)['status']}: the double has no index to deploy"
    rescue SystemCallError, Net::OpenTimeout, SocketError => e
      fail!("Elasticsearch is not reachable: #{e.message}")
    end

    def settings_registrations(args)
      options(args, [['--require-reason']])
      mode = { 'open' => 'open', 'close' => 'none', 'approved' => 'approved' }[args.first]
      return fail!('Usage: tootctl settings registrations open|close|approved') unless mode

      sql("INSERT INTO settings (var, value) VALUES ('registrations_mode', $1) " \
          'ON CONFLICT (var) DO UPDATE SET value = EXCLUDED.value, updated_at = now()', mode)
      puts 'OK'
    end
  end
end
