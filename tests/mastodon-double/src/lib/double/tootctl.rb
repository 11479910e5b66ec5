# frozen_string_literal: true

# tootctl of the Mastodon TEST DOUBLE: the subcommands deployment roles call, each doing a small
# real thing against the database, Redis or media storage.
#
# Options are parsed the way Mastodon's Thor commands parse them (lib/mastodon/cli/*.rb at
# v4.5.0): each command declares its options (the same names, types and aliases as upstream);
# Mastodon::CLI::Base does NOT call check_unknown_options!, so an unknown option is not refused
# as an option: Thor passes it on as a positional argument, and a command that takes no more
# arguments then fails with `ERROR: "tootctl CMD" was called with arguments [...]` (exit 1),
# while one with an optional argument (feeds build [USERNAME]) takes it as that argument.
# `--some_option` equals `--some-option`, `--no-X`/`--skip-X` turn a boolean off, numeric
# options refuse non-numbers, and missing required options are named, as in Thor.
require 'digest'
require 'net/http'
require 'securerandom'
require_relative 'storage'

module Double
  class Tootctl
    class Error < StandardError; end

    ROLES = %w[Owner Admin Moderator].freeze
    B, S, N, A = :boolean, :string, :numeric, :array
    # command => [method, positional arguments (a trailing ? marks an optional one), options]
    COMMANDS = {
      'accounts create' => [:accounts_create, %w[USERNAME],
                            { email: [S, required: true], confirmed: [B], role: [S], reattach: [B], force: [B], approve: [B] }],
      'accounts modify' => [:accounts_modify, %w[USERNAME],
                            { role: [S], remove_role: [B], email: [S], confirm: [B], enable: [B], disable: [B],
                              disable_2fa: [B], approve: [B], reset_password: [B] }],
      'feeds build' => [:feeds_build, %w[USERNAME?],
                        { all: [B], concurrency: [N, aliases: %w[-c]], verbose: [B, aliases: %w[-v]], dry_run: [B],
                          skip_filled_timelines: [S] }],
      'media remove' => [:media_remove, [],
                         { days: [N, aliases: %w[-d]], prune_profiles: [B], remove_headers: [B], include_follows: [B],
                           concurrency: [N, aliases: %w[-c]], verbose: [B, aliases: %w[-v]], dry_run: [B] }],
      'media remove-orphans' => [:media_remove_orphans, [], { start_after: [S], prefix: [S], fix_permissions: [B], dry_run: [B] }],
      'preview_cards remove' => [:preview_cards_remove, [],
                                 { days: [N], concurrency: [N, aliases: %w[-c]], verbose: [B, aliases: %w[-v]], dry_run: [B], link: [B] }],
      'cache clear' => [:cache_clear, [], {}],
      'search deploy' => [:search_deploy, [],
                          { concurrency: [N, aliases: %w[-c]], batch_size: [N, aliases: %w[-b]], only: [A], import: [B],
                            clean: [B], reset_chewy: [B], only_mapping: [B] }],
      'settings registrations open' => [:registrations_open, [], {}],
      'settings registrations close' => [:registrations_close, [], {}],
      'settings registrations approved' => [:registrations_approved, [], { require_reason: [B, aliases: %w[--require-invite-text]] }]
    }.freeze

    def run(argv)
      return puts(Double.version_string) || 0 if ['version', '--version', '-v'].include?(argv.first) && argv.size == 1
      return puts(usage) || 0 if argv.empty? || %w[help -h --help].include?(argv.first)

      words = argv.take_while { |a| !a.start_with?('-') }.map { |w| w.tr('_', '-') }
      name = COMMANDS.keys.find { |k| k.tr('_', '-') == words.first(k.split.size).join(' ') }
      return fail!("Could not find command #{argv.first(words.size.clamp(1, 3)).join(' ').inspect}.") unless name

      method, positional, spec = COMMANDS.fetch(name)
      args, opts = parse(argv.drop(name.split.size), spec)
      min, max = positional.count { |a| !a.end_with?('?') }, positional.size
      unless args.size.between?(min, max)
        called = args.empty? ? 'no arguments' : "arguments #{args.inspect}"
        raise Error, "ERROR: \"tootctl #{name}\" was called with #{called}\nUsage: \"tootctl #{name} #{positional.join(' ')}\"".rstrip
      end

      Double.check_config!
      result = send(method, *args, opts)
      result.is_a?(Integer) ? result : 0
    rescue Error => e
      fail!(e.message)
    end

    private

    def usage = "Commands (Mastodon test double):\n#{COMMANDS.map { |k, (_, a, _)| "  tootctl #{k} #{a.join(' ')}".rstrip }.join("\n")}\n  tootctl version"

    # Thor-like: returns [positional arguments (unknown options included), {option => value}].
    def parse(argv, spec)
      switches = spec.each_with_object({}) do |(key, (type, settings)), h|
        h["--#{key.to_s.tr('_', '-')}"] = [key, type]
        (settings || {}).fetch(:aliases, []).each { |a| h[a] = [key, type] }
      end
      args, opts, rest = [], {}, argv.dup
      while (token = rest.shift)
        if token == '--'
          args.concat(rest)
          break
        end
        switch, inline = token.start_with?('--') ? token.split('=', 2) : [token, nil]
        switch = switch.tr('_', '-') if switch.start_with?('--')
        negated = switch[/\A--(?:no|skip)-(.+)/, 1]
        if switches.key?(switch)
          key, type = switches[switch]
          opts[key] = value_for(switch, type, inline, rest)
        elsif negated && switches["--#{negated}"]&.last == B
          opts[switches["--#{negated}"].first] = false
        else
          args << token # unknown option: Thor hands it to the command as an argument
        end
      end
      missing = spec.select { |key, (_, settings)| (settings || {})[:required] && !opts.key?(key) }.keys
      raise Error, "No value provided for required options '#{missing.map { |k| "--#{k.to_s.tr('_', '-')}" }.join("', '")}'" unless missing.empty?

      [args, opts]
    end

    def value_for(switch, type, inline, rest)
      return inline.nil? || inline == 'true' if type == B
      return (inline ? inline.split(',') : rest.shift(rest.index { |t| t.start_with?('-') } || rest.size)) if type == A

      value = inline || (rest.first&.start_with?('-') ? nil : rest.shift)
      raise Error, "No value provided for option '#{switch}'" if value.nil?
      return value unless type == N

      Float(value).then { |f| f == f.to_i ? f.to_i : f }
    rescue ArgumentError
      raise Error, "Expected numeric value for '#{switch}'; got #{value.inspect}"
    end

    def fail!(message)
      warn message
      1
    end

    def sql(query, *params) = Double.db { |c| c.exec(query, *params) }

    def accounts_create(username, opts)
      return fail!('Cannot find user role with that name') if opts[:role] && !ROLES.include?(opts[:role])

      password = SecureRandom.hex
      sql('INSERT INTO accounts (username, email, role, confirmed, approved, password_digest) VALUES ($1, $2, $3, $4, true, $5)',
          username, opts[:email], opts[:role], opts[:confirmed] ? 'true' : 'false', Digest::SHA256.hexdigest(password))
      puts 'OK'
      puts "New password: #{password}"
    rescue PG::UniqueViolation => e
      fail!("Failure/Error: #{e.message[/Key \((\w+)\)/, 1] || 'username'}\n    has already been taken")
    end

    def accounts_modify(username, opts)
      return fail!('Cannot find user role with that name') if opts[:role] && !ROLES.include?(opts[:role])

      sets = { 'role' => opts[:role], 'email' => opts[:email], 'confirmed' => ('true' if opts[:confirm]),
               'approved' => ('true' if opts[:approve]), 'disabled' => (opts[:disable] ? 'true' : ('false' if opts[:enable])) }.compact
      sets['role'] = nil if opts[:remove_role]
      password = SecureRandom.hex if opts[:reset_password]
      sets['password_digest'] = Digest::SHA256.hexdigest(password) if password
      assignments = sets.keys.each_with_index.map { |col, i| "#{col} = $#{i + 2}" }
      assignments = ['username = username'] if assignments.empty?
      found = sql("UPDATE accounts SET #{assignments.join(', ')} WHERE username = $1 RETURNING id", username, *sets.values)
      return fail!('No user with such username') if found.empty?

      puts 'OK'
      puts "New password: #{password}" if password
    end

    # Rebuilds home feeds in Redis (feed:home:ID, a sorted set of status ids): every account's,
    # or USERNAME's only (lib/mastodon/cli/feeds.rb: 'No such account' when it does not exist).
    def feeds_build(username = nil, opts)
      accounts = if opts[:all] || username.nil?
                   sql('SELECT id FROM accounts')
                 else
                   sql('SELECT id FROM accounts WHERE username = $1', username).tap { |r| return fail!('No such account') if r.empty? }
                 end.map { |r| r['id'] }
      statuses = sql('SELECT id FROM statuses ORDER BY id DESC LIMIT 400').map { |r| r['id'].to_i }
      unless opts[:dry_run]
        Double.redis do |r|
          accounts.each do |id|
            r.del("feed:home:#{id}")
            r.zadd("feed:home:#{id}", statuses.map { |s| [s, s.to_s] }) unless statuses.empty?
          end
        end
      end
      puts "Regenerated feeds for #{accounts.size} account(s) with #{statuses.size} status(es)#{' (DRY RUN)' if opts[:dry_run]}"
    end

    # Removes stored media of statuses older than --days (default 7).
    def media_remove(opts)
      rows = sql("SELECT id, media_key FROM job_runs WHERE media_key IS NOT NULL AND media_removed_at IS NULL AND ran_at < now() - ($1 || ' days')::interval",
                 opts.fetch(:days, 7))
      rows.each do |row|
        next if opts[:dry_run]

        Storage.delete(row['media_key'])
        sql('UPDATE job_runs SET media_removed_at = now() WHERE id = $1', row['id'])
      end
      puts "Removed #{rows.size} media attachment(s)#{' (DRY RUN)' if opts[:dry_run]}"
    end

    # Removes stored objects that no job_runs row refers to.
    def media_remove_orphans(opts)
      known = sql('SELECT media_key FROM job_runs WHERE media_key IS NOT NULL AND media_removed_at IS NULL').map { |r| r['media_key'] }
      orphans = Storage.list.reject { |key, _| known.include?(key) }
      orphans.each { |key, _| Storage.delete(key) } unless opts[:dry_run]
      puts "Visited #{known.size + orphans.size} objects, removed #{orphans.size} orphans " \
           "(approx. #{orphans.sum { |_, size| size }} bytes)#{' (DRY RUN)' if opts[:dry_run]}"
    end

    def preview_cards_remove(opts)
      verb = opts[:dry_run] ? 'SELECT id FROM' : 'DELETE FROM'
      removed = sql("#{verb} preview_cards WHERE created_at < now() - ($1 || ' days')::interval#{' RETURNING id' unless opts[:dry_run]}",
                    opts.fetch(:days, 180))
      puts "Removed #{removed.size} preview cards#{' (DRY RUN)' if opts[:dry_run]}"
    end

    # Rails.cache.clear on the cache Redis: deletes the cache:* keys.
    def cache_clear(_opts)
      removed = Double.redis(:cache) { |r| r.scan_each(match: 'cache:*').each_slice(100).sum { |keys| r.del(*keys) } }
      puts "OK (#{removed} cache entries removed)"
    end

    def search_deploy(_opts)
      return puts('Elasticsearch is disabled (ES_ENABLED is not true): nothing to deploy') unless ENV['ES_ENABLED'] == 'true'

      host = ENV.fetch('ES_HOST', 'localhost')
      uri = URI("#{host.start_with?('http') ? host : "http://#{host}"}:#{ENV.fetch('ES_PORT', '9200')}/_cluster/health")
      req = Net::HTTP::Get.new(uri)
      req.basic_auth(ENV['ES_USER'], ENV['ES_PASS']) if Double.present?('ES_USER')
      res = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == 'https', open_timeout: 5, read_timeout: 5) { |http| http.request(req) }
      return fail!("Elasticsearch at #{uri.host}:#{uri.port} answered #{res.code}") unless res.is_a?(Net::HTTPSuccess)

      puts "Elasticsearch at #{uri.host}:#{uri.port} is #{JSON.parse(res.body)['status']}: the double has no index to deploy"
    rescue SystemCallError, Net::OpenTimeout, SocketError => e
      fail!("Elasticsearch is not reachable: #{e.message}")
    end

    def registrations_open(_opts) = registrations('open')
    def registrations_close(_opts) = registrations('none')
    def registrations_approved(_opts) = registrations('approved')

    def registrations(mode)
      sql("INSERT INTO settings (var, value) VALUES ('registrations_mode', $1) " \
          'ON CONFLICT (var) DO UPDATE SET value = EXCLUDED.value, updated_at = now()', mode)
      puts 'OK'
    end
  end
end
