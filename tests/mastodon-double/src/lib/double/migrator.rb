# frozen_string_literal: true

# Migrations of the Mastodon TEST DOUBLE, run like Rails' db tasks: numbered SQL files in
# db/migrate (pre-deployment) and db/post_migrate (post-deployment, skipped while
# SKIP_POST_DEPLOYMENT_MIGRATIONS is set to any value, as in Mastodon), tracked in
# schema_migrations, one run at a time (advisory lock). Every run adds a migration_runs row
# saying where it ran: the server (inet_server_addr/port) and what the client connected to.
require 'zlib'

module Double
  module Migrator
    module_function

    MIGRATOR_SALT = 2_053_462_845 # ActiveRecord's advisory lock salt
    PROTECTED_ENVIRONMENTS = %w[production].freeze # ActiveRecord::Base.protected_environments

    def version(file) = File.basename(file)[/\A\d+/]

    def files(post: !ENV.key?('SKIP_POST_DEPLOYMENT_MIGRATIONS'))
      dirs = post ? %w[db/migrate db/post_migrate] : %w[db/migrate]
      dirs.flat_map { |dir| Dir[File.join(ROOT, dir, '*.sql')] }.sort_by { |f| version(f).to_i }
    end

    # The tables the schema defines (what db/schema.rb's create_table ... force: :cascade drops).
    def schema_tables = files(post: true).flat_map { |f| File.read(f).scan(/CREATE TABLE (\w+)/i).flatten }.uniq

    # db:setup is Rails' db:create, db:schema:load, db:seed.
    def setup
      create_database
      with_lock do |conn|
        check_protected_environments(conn)
        load_schema(conn)
        seed(conn)
      end
    end

    # db:prepare: creates and loads the schema when the database is missing or empty, else migrates.
    def prepare
      begin
        Double.connect.close
      rescue PG::ConnectionBad => e
        raise unless e.message.include?('does not exist')

        create_database
      end
      with_lock do |conn|
        if current_version(conn).zero?
          load_schema(conn)
          seed(conn)
        else
          migrate_with(conn)
        end
      end
    end

    def migrate = with_lock { |conn| migrate_with(conn) }

    def migrate_with(conn)
      run(conn, files, ENV.key?('SKIP_POST_DEPLOYMENT_MIGRATIONS') ? 'pre' : 'post')
      record_environment(conn)
    end

    # Rails' db:create on PostgreSQL: CREATE DATABASE, always, over a connection to the
    # "postgres" database. PostgreSQL checks the CREATEDB privilege before it looks for the
    # database: without it this fails ("permission denied to create database") even when the
    # database exists; with it, "already exists" is reported and tolerated.
    def create_database
      args = Double.pg_params
      name = args.first.is_a?(String) ? PG::Connection.conninfo_parse(args.first).find { |o| o[:keyword] == 'dbname' }[:val] : args.first[:dbname]
      admin = args.first.is_a?(String) ? PG.connect(args.first, **args.last, dbname: 'postgres') : PG.connect(args.first.merge(dbname: 'postgres'))
      admin.exec('SET client_min_messages TO warning')
      admin.exec("CREATE DATABASE #{admin.quote_ident(name)} ENCODING 'utf8'")
      puts "Created database '#{name}'"
    rescue PG::DuplicateDatabase
      warn "Database '#{name}' already exists"
    rescue PG::Error => e
      warn e.message
      warn "Couldn't create '#{name}' database. Please check your configuration."
      abort "bin/rails aborted!\nActiveRecord::StatementInvalid: #{e.message.lines.first.strip}"
    ensure
      admin&.close
    end

    # Rails' db:check_protected_environments (a prerequisite of db:schema:load): a database that
    # has a schema and whose ar_internal_metadata says "production" is not overwritten unless
    # DISABLE_DATABASE_ENVIRONMENT_CHECK is present (any value).
    def check_protected_environments(conn)
      return if ENV.key?('DISABLE_DATABASE_ENVIRONMENT_CHECK')
      return if current_version(conn).zero?

      stored = table?(conn, 'ar_internal_metadata') &&
               conn.exec("SELECT value FROM ar_internal_metadata WHERE key = 'environment'").first&.fetch('value')
      unless stored
        abort "bin/rails aborted!\nActiveRecord::NoEnvironmentInSchemaError: Environment data not found in the schema. " \
              "To resolve this issue, run:\n\n        bin/rails db:environment:set RAILS_ENV=#{Double.env_name}"
      end
      if PROTECTED_ENVIRONMENTS.include?(stored)
        abort "bin/rails aborted!\nActiveRecord::ProtectedEnvironmentError: You are attempting to run a destructive action " \
              "against your '#{stored}' database.\nIf you are sure you want to continue, run the same command with the " \
              "environment variable:\nDISABLE_DATABASE_ENVIRONMENT_CHECK=1"
      end
      return if stored == Double.env_name

      abort "bin/rails aborted!\nActiveRecord::EnvironmentMismatchError: You are attempting to modify a database that was " \
            "last run in `#{stored}` environment.\nYou are running in `#{Double.env_name}` environment."
    end

    # db:schema:load: like db/schema.rb's `create_table ..., force: :cascade`, every table of the
    # schema is dropped (with its data) and created again, then every migration is recorded as run.
    def load_schema(conn)
      schema_tables.each { |t| conn.exec("DROP TABLE IF EXISTS #{conn.quote_ident(t)} CASCADE") }
      conn.exec('DELETE FROM schema_migrations') if table?(conn, 'schema_migrations')
      run(conn, files(post: true), 'setup')
      record_environment(conn)
    end

    # db:seed (db/seeds.rb): idempotent, like Mastodon's find_or_create_by seeds.
    def seed(conn)
      conn.exec("INSERT INTO settings (var, value) VALUES ('registrations_mode', 'none') ON CONFLICT (var) DO NOTHING")
    end

    # ActiveRecord's InternalMetadata: which environment last loaded or migrated this database.
    def record_environment(conn)
      conn.exec(<<~SQL)
        CREATE TABLE IF NOT EXISTS ar_internal_metadata (key varchar PRIMARY KEY, value varchar,
          created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL)
      SQL
      conn.exec_params(<<~SQL, [Double.env_name])
        INSERT INTO ar_internal_metadata (key, value, created_at, updated_at) VALUES ('environment', $1, now(), now())
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
      SQL
    end

    def status
      conn = Double.connect
      done = table?(conn, 'schema_migrations') ? conn.exec('SELECT version FROM schema_migrations').column_values(0) : []
      puts "\ndatabase: #{conn.db}\n\n Status   Migration ID    Migration Name\n#{'-' * 50}"
      files(post: true).each do |f|
        puts format('   %-6s %-15s %s', done.include?(version(f)) ? 'up' : 'down', version(f), File.basename(f, '.sql').sub(/\A\d+_/, ''))
      end
    end

    def current_version(conn = nil)
      conn ||= Double.connect
      table?(conn, 'schema_migrations') ? conn.exec('SELECT max(version) FROM schema_migrations').getvalue(0, 0).to_i : 0
    end

    def run(conn, migrations, pass)
      conn.exec(<<~SQL)
        CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS migration_runs (id bigserial PRIMARY KEY, hostname text NOT NULL, pid integer NOT NULL,
          pass text NOT NULL, versions text[] NOT NULL, app_version text NOT NULL, ran_at timestamptz NOT NULL DEFAULT now());
        ALTER TABLE migration_runs ADD COLUMN IF NOT EXISTS server_addr inet, ADD COLUMN IF NOT EXISTS server_port integer,
          ADD COLUMN IF NOT EXISTS client_host text, ADD COLUMN IF NOT EXISTS client_port integer;
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
      # server_*: the PostgreSQL server that ran them (PgBouncer passes the real server's through);
      # client_*: what this process connected to (the host and port after DB_HOST/DB_PORT or DATABASE_URL).
      conn.exec_params(<<~SQL, [Double.hostname, Process.pid, pass, "{#{applied.join(',')}}", Double.version, conn.host, conn.port])
        INSERT INTO migration_runs (hostname, pid, pass, versions, app_version, server_addr, server_port, client_host, client_port)
        VALUES ($1, $2, $3, $4, $5, inet_server_addr(), inet_server_port(), $6, $7)
      SQL
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
  end
end
