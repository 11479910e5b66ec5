# frozen_string_literal: true

# Migrations of the Mastodon TEST DOUBLE, run like Rails' db tasks: numbered SQL files in
# db/migrate (pre-deployment) and db/post_migrate (post-deployment, skipped while
# SKIP_POST_DEPLOYMENT_MIGRATIONS is set to any value, as in Mastodon), tracked in
# schema_migrations, one run at a time (advisory lock). Every run adds a migration_runs row.
require 'zlib'

module Double
  module Migrator
    module_function

    MIGRATOR_SALT = 2_053_462_845 # ActiveRecord's advisory lock salt

    def version(file) = File.basename(file)[/\A\d+/]

    def files(post: !ENV.key?('SKIP_POST_DEPLOYMENT_MIGRATIONS'))
      dirs = post ? %w[db/migrate db/post_migrate] : %w[db/migrate]
      dirs.flat_map { |dir| Dir[File.join(ROOT, dir, '*.sql')] }.sort_by { |f| version(f).to_i }
    end

    # db:setup: creates the database if needed, then the whole schema. Refuses a database that is
    # already set up (Rails would load the schema over it, dropping every table).
    def setup
      create_database
      with_lock do |conn|
        if table?(conn, 'schema_migrations') && conn.exec('SELECT count(*) FROM schema_migrations').getvalue(0, 0).to_i.positive?
          abort "db:setup: #{conn.db} is already set up (schema_migrations is not empty); run db:migrate instead"
        end
        run(conn, files(post: true), 'setup')
      end
    end

    def migrate
      pass = ENV.key?('SKIP_POST_DEPLOYMENT_MIGRATIONS') ? 'pre' : 'post'
      with_lock { |conn| run(conn, files, pass) }
    end

    def status
      conn = Double.connect
      done = table?(conn, 'schema_migrations') ? conn.exec('SELECT version FROM schema_migrations').column_values(0) : []
      puts "\ndatabase: #{conn.db}\n\n Status   Migration ID    Migration Name\n#{'-' * 50}"
      files(post: true).each do |f|
        puts format('   %-6s %-15s %s', done.include?(version(f)) ? 'up' : 'down', version(f), File.basename(f, '.sql').sub(/\A\d+_/, ''))
      end
    end

    def current_version
      conn = Double.connect
      table?(conn, 'schema_migrations') ? conn.exec('SELECT max(version) FROM schema_migrations').getvalue(0, 0).to_i : 0
    end

    def run(conn, migrations, pass)
      conn.exec(<<~SQL)
        CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS migration_runs (id bigserial PRIMARY KEY, hostname text NOT NULL, pid integer NOT NULL,
          pass text NOT NULL, versions text[] NOT NULL, app_version text NOT NULL, ran_at timestamptz NOT NULL DEFAULT now());
      SQL
      done = conn.exec('SELECT version FROM schema_migrations').column_values(0)
      applied = migrations.reject { |f| done.include?(version(f)) }.map do |file|
        name = File.basename(file, '.sql')
        puts "== #{name}: migrating"
        conn.transaction do
          conn.exec(File.read(file))
          conn.exec_params('INSERT INTO schema_migrations (version) VALUES ($1)', [version(file)])
        end
        puts "== #{name}: migrated"
        version(file)
      end
      conn.exec_params('INSERT INTO migration_runs (hostname, pid, pass, versions, app_version) VALUES ($1, $2, $3, $4, $5)',
                       [Double.hostname, Process.pid, pass, "{#{applied.join(',')}}", Double.version])
      puts "#{pass}: #{applied.size} migration(s) applied on #{conn.host}:#{conn.port}/#{conn.db}"
    end

    # Like Rails: a second concurrent migration fails instead of waiting.
    def with_lock
      conn = Double.connect
      conn.exec('SET client_min_messages TO warning')
      key = (MIGRATOR_SALT * Zlib.crc32(conn.db)) % (2**63)
      unless conn.exec_params('SELECT pg_try_advisory_lock($1)', [key]).getvalue(0, 0) == 't'
        abort 'ActiveRecord::ConcurrentMigrationError: Cannot run migrations because another migration process is currently running.'
      end
      yield conn
    ensure
      conn&.close
    end

    def table?(conn, name) = !conn.exec_params('SELECT to_regclass($1)', [name]).getvalue(0, 0).nil?

    def create_database
      conn = Double.connect
      puts "Database '#{conn.db}' already exists"
      conn.close
    rescue PG::ConnectionBad => e
      raise unless e.message =~ /database "([^"]+)" does not exist/

      name = Regexp.last_match(1)
      args = Double.pg_params
      admin = args.first.is_a?(String) ? PG.connect(args.first, **args.last, dbname: 'postgres') : PG.connect(args.first.merge(dbname: 'postgres'))
      admin.exec("CREATE DATABASE #{admin.quote_ident(name)}")
      admin.close
      puts "Created database '#{name}'"
    end
  end
end
