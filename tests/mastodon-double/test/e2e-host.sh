#!/usr/bin/env bash
# End-to-end test of the Mastodon TEST DOUBLE on one Debian 13 (or 12) host (run as root inside a
# throw-away container, see e2e-container.sh): installs the Debian packages, PostgreSQL and Redis,
# clones v4.5.0 from REPO into /home/mastodon/live as user mastodon, installs, sets up, starts
# the metrics exporter, web, two sidekiq processes and streaming as background processes,
# exercises the contract, then upgrades to v4.5.1 with the two migration passes. Each check that
# mirrors an upstream behaviour names the upstream file (v4.5.0 unless said otherwise).
# Ends with "N passed, N failed".
#   usage: e2e-host.sh REPO   (a path or file:// URL of the repository made by make-repo.sh)
set -uo pipefail
repo=${1:?usage: e2e-host.sh REPO}
here=$(cd "$(dirname "$0")" && pwd)
live=/home/mastodon/live
passed=0 failed=0
check() { # NAME COMMAND...
  local name=$1; shift
  if out=$("$@" 2>&1); then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; echo "$out" | tail -15 | sed 's/^/     /'; fi
}
as_mastodon() { runuser -u mastodon -- env -C "$live" RAILS_ENV=production NODE_ENV=production "$@"; }
fails() { ! as_mastodon "$@"; } # succeeds when the command fails
json() { ruby -rjson -e 'v = JSON.parse(STDIN.read); ARGV[0].split(".").each { |k| v = v.is_a?(Array) ? v[k.to_i] : v[k] }; puts v' "$1"; }
wait_for() { for _ in $(seq 1 "${2:-60}"); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }
start() { # NAME COMMAND... : background process of user mastodon, pid in /tmp/double/NAME.pid, log in NAME.log
  local name=$1; shift
  as_mastodon sh -c 'echo $$ >"$0"; exec "$@"' "/tmp/double/$name.pid" "$@" >"/tmp/double/$name.log" 2>&1 &
}
stop() { [ -f "/tmp/double/$1.pid" ] && kill "$(cat "/tmp/double/$1.pid")" 2>/dev/null; rm -f "/tmp/double/$1.pid"; }
sql() { runuser -u postgres -- psql -tA -d mastodon_production -c "$1"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
token() { curl -sf -X POST "http://127.0.0.1:3000/api/v1/double/tokens" "$@" | json access_token; }
# Runs Ruby inside the application (config/environment.rb loaded), e.g. to call the Rack app directly.
app_ruby() { as_mastodon "${@:2}" bundle exec ruby -e "require './config/environment'; $1"; }

echo "== [${SECONDS}s] packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io ruby ruby-rack puma ruby-sidekiq ruby-pg ruby-redis ruby-connection-pool \
  ruby-aws-sdk-s3 ruby-dotenv bundler rake nodejs node-ws node-redis node-pg node-configurable-http-proxy yarnpkg git \
  postgresql redis-server curl ca-certificates procps >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }
# PostgreSQL without TLS, like a PgBouncer without TLS in front of it (streaming/database.js then needs DB_SSLMODE=disable)
echo 'ssl = off' >"$(ls -d /etc/postgresql/*/main)/conf.d/no-ssl.conf"
systemctl restart postgresql; systemctl start redis-server
wait_for 'runuser -u postgres -- psql -c "select 1"' 60
runuser -u postgres -- psql -q -c "CREATE ROLE mastodon LOGIN PASSWORD 'secret'" 2>/dev/null
runuser -u postgres -- psql -q -c "ALTER ROLE mastodon NOCREATEDB"
runuser -u postgres -- psql -q -c "SET client_min_messages TO warning" -c "DROP DATABASE IF EXISTS mastodon_production WITH (FORCE)"
runuser -u postgres -- psql -q -c "CREATE DATABASE mastodon_production OWNER mastodon"
redis-cli flushall >/dev/null
id mastodon >/dev/null 2>&1 || useradd -m -s /bin/bash mastodon
mkdir -p /tmp/double && chmod 777 /tmp/double

echo "== [${SECONDS}s] install v4.5.0"
rm -rf "$live"
# git >= 2.45.1 refuses to clone a local repository owned by another user (safe.directory)
[ -d "${repo#file://}" ] && chown -R mastodon: "${repo#file://}"
check 'git clone v4.5.0 as mastodon' runuser -u mastodon -- git clone -q --branch v4.5.0 "$repo" "$live"
check '.ruby-version, .nvmrc and engines.node present (upstream v4.5.0: 3.4.7, 24.10, >=20; Debian 12 repository: >=18)' sh -c \
  "[ -s $live/.ruby-version ] && [ -s $live/.nvmrc ] && grep -Eq '\"node\": \">=(20|18)\"' $live/package.json"
cat >"$live/.env.production" <<'EOF'
# written by e2e-host.sh
LOCAL_DOMAIN=mastodon.test
SECRET_KEY_BASE=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=primary
ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=deterministic
ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=salt
DB_HOST=127.0.0.1
DB_PORT=5432
DB_NAME=mastodon_production
DB_USER=mastodon
DB_PASS="secret"
DB_POOL=5
# libpq falls back to plain for Ruby; streaming insists on verified TLS (see the streaming checks)
DB_SSLMODE=prefer
REDIS_URL=redis://127.0.0.1:6379/0
S3_ENABLED=false
MASTODON_PROMETHEUS_EXPORTER_ENABLED=true
MASTODON_PROMETHEUS_EXPORTER_WEB_DETAILED_METRICS=true
MASTODON_PROMETHEUS_EXPORTER_SIDEKIQ_DETAILED_METRICS=true
EOF
chown mastodon: "$live/.env.production"
check 'bundle install --local (frozen, system gems)' as_mastodon sh -c \
  "bundle config set --local frozen true && bundle config set --local without 'development test' && bundle install --local"
. /etc/os-release  # yarnpkg is yarn 4 on Debian 13, yarn 1 on Debian 12
[ "$VERSION_ID" = 12 ] && yarn_flag=--frozen-lockfile || yarn_flag=--immutable
check "yarnpkg install $yarn_flag (offline)" as_mastodon yarnpkg install $yarn_flag
check 'git tree still clean after installs' test -z "$(as_mastodon git status --porcelain)"
refused() { # succeeds when COMMAND... exits non-zero (not by timeout) saying "missing"
  out=$(as_mastodon env LOCAL_DOMAIN= REDIS_URL= timeout 20 "$@" 2>&1); rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "$out" | grep -q 'missing LOCAL_DOMAIN.*REDIS_URL or REDIS_HOST' || { echo "rc=$rc $out"; return 1; }
}
check 'web refuses to start without LOCAL_DOMAIN and Redis' refused bundle exec puma -C config/puma.rb
check 'sidekiq refuses to start without LOCAL_DOMAIN and Redis' refused bundle exec sidekiq -c 1 -q default
check 'streaming refuses to start without Redis' sh -c \
  "! runuser -u mastodon -- env -C $live NODE_ENV=production REDIS_URL= timeout 20 node ./streaming 2>&1 | grep -q 'missing REDIS_URL or REDIS_HOST' && exit 1 || exit 0"
check 'no RAILS_ENV: rails and tootctl abort (config/boot.rb:3, ENV.key?)' sh -c \
  "out=\$(runuser -u mastodon -- env -C $live bin/tootctl version 2>&1); [ \$? -ne 0 ] && echo \"\$out\" | grep -q 'RAILS_ENV environment variable is not set'"

echo "== [${SECONDS}s] db:setup (Rails: db:create, db:schema:load, db:seed)"
as_mastodon bundle exec rails db:setup >/tmp/double/setup-nocreatedb.out 2>&1; rc=$?
check 'db:setup fails without CREATEDB, although the database exists (CREATE DATABASE checks the privilege first)' sh -c \
  "[ $rc -ne 0 ] && grep -q 'permission denied to create database' /tmp/double/setup-nocreatedb.out && [ -z \"\$(runuser -u postgres -- psql -tA -d mastodon_production -c \"SELECT to_regclass('statuses')\")\" ]"
runuser -u postgres -- psql -q -c "ALTER ROLE mastodon CREATEDB"
check 'db:setup with CREATEDB: "already exists" is tolerated, schema loaded, seeded' sh -c \
  "runuser -u mastodon -- env -C $live RAILS_ENV=production bundle exec rails db:setup 2>&1 | grep -q \"Database 'mastodon_production' already exists\""
check 'ar_internal_metadata says environment=production' test "$(sql "SELECT value FROM ar_internal_metadata WHERE key = 'environment'")" = production
check 'db:setup again is refused: ActiveRecord::ProtectedEnvironmentError (Rails check_protected_environments)' sh -c \
  "out=\$(runuser -u mastodon -- env -C $live RAILS_ENV=production bundle exec rails db:setup 2>&1); [ \$? -ne 0 ] && echo \"\$out\" | grep -q ProtectedEnvironmentError"
check 'migration_runs records server and client address/port of the setup pass' test \
  "$(sql "SELECT pass, host(server_addr), server_port, client_host, client_port FROM migration_runs ORDER BY id LIMIT 1")" = 'setup|127.0.0.1|5432|127.0.0.1|5432'
check 'WHITELIST_MODE present (even empty) warns (config/initializers/deprecations.rb:26, ENV.key?)' sh -c \
  "runuser -u mastodon -- env -C $live RAILS_ENV=production WHITELIST_MODE= bundle exec rails db:version 2>&1 | grep -q 'WHITELIST_MODE has been replaced'"

echo "== [${SECONDS}s] assets (Vite: public/packs/.vite/manifest.json; Propshaft: public/assets/.manifest.json)"
check 'assets:precompile' as_mastodon bundle exec rails assets:precompile
check 'Vite manifest, fingerprinted entry and source map; Propshaft manifest and 500.html' sh -c \
  "f=\$(ruby -rjson -e 'puts JSON.parse(File.read(ARGV[0]))[\"entrypoints/application.js\"][\"file\"]' $live/public/packs/.vite/manifest.json) &&
   echo \"\$f\" | grep -Eq '^assets/application-[A-Za-z0-9_-]{8}\.js$' && [ -s $live/public/packs/\$f ] && [ -s $live/public/packs/\$f.map ] &&
   [ -s $live/public/assets/.manifest.json ] && [ -s $live/public/assets/500.html ]"
digest1=$(sha256sum <"$live/public/packs/.vite/manifest.json")
as_mastodon bundle exec rails assets:precompile >/dev/null
check 'assets:precompile is NOT reproducible (random build id: compile once and copy)' test "$digest1" != "$(sha256sum <"$live/public/packs/.vite/manifest.json")"

echo "== [${SECONDS}s] processes"
for p in exporter web sidekiq-main sidekiq-ingress sidekiq-s3 fake-s3 streaming streaming-tls; do stop "$p"; done
check 'bin/prometheus_exporter refuses an unknown option' fails bundle exec bin/prometheus_exporter --frobnicate
start exporter bundle exec bin/prometheus_exporter -p 9394 -b 127.0.0.1 --prefix mastodon_
# config/puma.rb reads MASTODON_PROMETHEUS_EXPORTER_ENABLED before .env.production is loaded: the unit must set it
start web env MASTODON_PROMETHEUS_EXPORTER_ENABLED=true RAILS_SERVE_STATIC_FILES=true WEB_CONCURRENCY=2 MAX_THREADS=5 PORT=3000 bundle exec puma -C config/puma.rb
start sidekiq-main env DB_POOL=5 bundle exec sidekiq -c 5 -q default,8 -q push,6 -q mailers,2 -q pull -q scheduler -q fasp
start sidekiq-ingress env DB_POOL=2 bundle exec sidekiq -c 3 -q ingress -g ingress-tag
start streaming env PORT=4000 DB_SSLMODE=disable node ./streaming
check 'web /health 200 OK' wait_for '[ "$(curl -sf http://127.0.0.1:3000/health)" = OK ]' 60
check 'streaming health 200 OK' wait_for '[ "$(curl -sf http://127.0.0.1:4000/api/v1/streaming/health)" = OK ]' 30
check 'exporter answers /ping' wait_for '[ "$(curl -sf http://127.0.0.1:9394/ping)" = PONG ]' 30
kill -USR1 "$(cat /tmp/double/exporter.pid)"  # the unit's ExecReload
check 'exporter survives SIGUSR1 (ExecReload)' sh -c 'sleep 0.5; [ "$(curl -sf http://127.0.0.1:9394/ping)" = PONG ]'
check 'sidekiq warns when DB_POOL < concurrency' wait_for 'grep -q "DB_POOL=2 is lower than the Sidekiq concurrency 3" /tmp/double/sidekiq-ingress.log' 30
check 'both sidekiq processes registered in Redis' wait_for '[ "$(redis-cli scard processes)" = 2 ]' 60

echo "== [${SECONDS}s] web and sidekiq"
post() { curl -sf -X POST http://127.0.0.1:3000/api/v1/statuses "$@"; }
for q in default push ingress mailers pull scheduler fasp; do
  jid=$(post -d "status=hello $q" -d "queue=$q" | json job_id)
  check "job on queue $q ran on queue $q" wait_for "[ \"\$(curl -sf http://127.0.0.1:3000/api/v1/jobs/$jid | json queue)\" = $q ]" 40
done
resp=$(post -H 'Content-Type: application/json' -d '{"status":"ingress json","queue":"ingress"}')
id=$(echo "$resp" | json id) jid=$(echo "$resp" | json job_id)
wait_for "curl -sf http://127.0.0.1:3000/api/v1/jobs/$jid" 40
job=$(curl -sf "http://127.0.0.1:3000/api/v1/statuses/$id/job")
check 'job_runs row: tag, hostname, pid, identity, app_version' test "$(echo "$job" | json tag)" = ingress-tag -a \
  "$(echo "$job" | json hostname)" = "$(hostname)" -a "$(echo "$job" | json pid)" = "$(cat /tmp/double/sidekiq-ingress.pid)" \
  -a -n "$(echo "$job" | json identity)" -a "$(echo "$job" | json app_version)" = 4.5.0
check 'media stored under public/system' test "$(cat "$live/public/system/$(echo "$job" | json media_key)")" = 'ingress json'
check 'GET status says which server answered' sh -c \
  "curl -sf http://127.0.0.1:3000/api/v1/statuses/$id | grep -q '\"in_recovery\":false'"
check 'unknown queue is refused (422)' test "$(code -d status=x -d queue=nope http://127.0.0.1:3000/api/v1/statuses)" = 422
check 'instance: uri, version, double marker' sh -c \
  "curl -sf http://127.0.0.1:3000/api/v1/instance | grep -q '\"uri\":\"mastodon.test\",\"domain\":\"mastodon.test\",\"title\":\"Mastodon (test double)\",\"version\":\"4.5.0+double\",\"double\":true'"
instance=$(curl -sf http://127.0.0.1:3000/api/v1/instance)
check 'instance: packs_digest is the SHA-256 of public/packs/.vite/manifest.json' test \
  "$(echo "$instance" | json packs_digest)" = "$(sha256sum <"$live/public/packs/.vite/manifest.json" | cut -d' ' -f1)"
check 'instance: served_by gives the worker pid, the master pid (ppid), boot time and loaded version' sh -c \
  "[ '$(echo "$instance" | json served_by.ppid)' = '$(cat /tmp/double/web.pid)' ] && [ '$(echo "$instance" | json served_by.pid)' != '$(cat /tmp/double/web.pid)' ] &&
   [ -n '$(echo "$instance" | json served_by.booted_at)' ] && [ '$(echo "$instance" | json served_by.version)' = 4.5.0+double ] &&
   [ -n '$(echo "$instance" | json served_by.revision)' ]"
check 'home page: Cache-Control private, no-store (application_controller.rb set_cache_control_defaults)' sh -c \
  "curl -sf -D - -o /dev/null http://127.0.0.1:3000/ | tr -d '\\r' | grep -qix 'cache-control: private, no-store'"
check 'home page links the precompiled pack, served from public/ (RAILS_SERVE_STATIC_FILES=true)' sh -c \
  "curl -sf http://127.0.0.1:3000/\$(curl -sf http://127.0.0.1:3000/ | grep -o 'packs/assets/application-[A-Za-z0-9_-]*\.js') | grep -q 'test double'"
# One Ruby process for the ENV semantics checks: each case sets the variables, then asks the code.
app_ruby '
  require "./lib/double/web"; require "./lib/double/storage"
  [nil, "false", "TRUE", "true"].each do |v|
    v ? ENV["RAILS_SERVE_STATIC_FILES"] = v : ENV.delete("RAILS_SERVE_STATIC_FILES")
    puts "static #{v.inspect} #{Double::Web.new.call(Rack::MockRequest.env_for("/robots.txt"))[0]}"
  end
  ENV.update("S3_ENABLED" => "true", "S3_BUCKET" => "b", "S3_ALIAS_HOST" => "", "WEB_DOMAIN" => "")
  puts "alias #{Double::Storage.url("k")}", "web_domain #{Double.web_domain.inspect}"
' >/tmp/double/env-semantics.out 2>&1
check 'public/ not served unless RAILS_SERVE_STATIC_FILES is exactly "true" (config/application.rb:89)' test \
  "$(grep '^static' /tmp/double/env-semantics.out | tr '\n' ' ')" = 'static nil 404 static "false" 404 static "TRUE" 404 static "true" 200 '
check 'S3_ALIAS_HOST present but empty is used (config/initializers/paperclip.rb:86, ENV.key?)' grep -qx 'alias https:///k' /tmp/double/env-semantics.out
check 'WEB_DOMAIN present but empty is used (config/initializers/1_hosts.rb:5, ENV.fetch)' grep -qx 'web_domain ""' /tmp/double/env-semantics.out
check 'X-Forwarded-For honoured from a trusted proxy' test \
  "$(curl -sf -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:3000/api/v1/double/whoami | json remote_ip)" = 203.0.113.7

echo "== [${SECONDS}s] streaming (tokens looked up in oauth_access_tokens, streaming/index.js:367)"
check 'websocket receives the posted status (ws-expect.js, token from POST /api/v1/double/tokens)' node "$here/ws-expect.js" \
  --ws 'ws://127.0.0.1:4000/api/v1/streaming?stream=public' --post http://127.0.0.1:3000/api/v1/statuses --queue push
check 'websocket without a token is refused with 401' node "$here/ws-expect.js" --no-token \
  --ws 'ws://127.0.0.1:4000/api/v1/streaming?stream=public' --post http://127.0.0.1:3000/api/v1/statuses
check 'unknown token: 401 Invalid access token' sh -c \
  "[ \"\$(curl -s -H 'Authorization: Bearer nope' http://127.0.0.1:4000/api/v1/streaming/public)\" = '{\"error\":\"Invalid access token\"}' ]"
tok=$(token)
curl -sN --max-time 4 -H "Authorization: Bearer $tok" http://127.0.0.1:4000/api/v1/streaming/public >/tmp/double/sse.out &
sse=$!; sleep 1; post -d 'status=over sse' >/dev/null; wait $sse
check 'server-sent events receive the posted status (token in Authorization)' grep -q 'over sse' /tmp/double/sse.out
curl -sf -X POST -d "token=$tok" http://127.0.0.1:3000/oauth/revoke >/dev/null
check 'revoked token: 401' test "$(code "http://127.0.0.1:4000/api/v1/streaming/public?access_token=$tok")" = 401
check 'token without read scope: 401' test "$(code "http://127.0.0.1:4000/api/v1/streaming/public?access_token=$(token -d scopes=write)")" = 401
# streaming/database.js:85-98: DB_SSLMODE=prefer (from .env.production) means verified TLS for node-pg
start streaming-tls env PORT=4001 node ./streaming
wait_for '[ "$(curl -sf http://127.0.0.1:4001/api/v1/streaming/health)" = OK ]' 30
tls_code=$(code "http://127.0.0.1:4001/api/v1/streaming/public?access_token=$(token)")
check 'DB_SSLMODE=prefer against PostgreSQL without TLS: streaming cannot look tokens up (500), health still OK' sh -c \
  "[ $tls_code = 500 ] && [ \"\$(curl -sf http://127.0.0.1:4001/api/v1/streaming/health)\" = OK ] && grep -q 'does not support SSL' /tmp/double/streaming-tls.log"
stop streaming-tls
node -e "const W = require('ws'); const ws = new W('ws://127.0.0.1:4000/api/v1/streaming?stream=public', { headers: { Authorization: 'Bearer $(token)' } });
  ws.on('open', () => console.log('open')); ws.on('unexpected-response', (q, r) => console.log(r.statusCode)); setTimeout(() => process.exit(0), 8000);" >/tmp/double/ws-hold.out 2>&1 &
hold=$!
wait_for 'grep -q open /tmp/double/ws-hold.out' 20
check 'streaming /metrics (prom-client, streaming/metrics.js) counts the open websocket' sh -c \
  "m=\$(curl -sf http://127.0.0.1:4000/metrics) && echo \"\$m\" | grep -q '^connected_clients{type=\"websocket\"} 1\$' &&
   echo \"\$m\" | grep -q '^connected_channels{type=\"websocket\",channel=\"public\"} 1\$' && echo \"\$m\" | grep -q '^redis_subscriptions 1\$' &&
   echo \"\$m\" | grep -q '^messages_sent_total{type=\"websocket\"} [1-9]' && echo \"\$m\" | grep -q '^nodejs_heap_size_total_bytes '"
kill $hold 2>/dev/null; wait $hold 2>/dev/null

echo "== [${SECONDS}s] metrics (bin/prometheus_exporter, as dist/mastodon-prometheus-exporter.service at v4.6.5)"
curl -sf http://127.0.0.1:9394/metrics >/tmp/double/metrics.txt
check 'exporter: web requests (mastodon_http_requests_total, detailed labels)' \
  grep -q '^mastodon_http_requests_total{action="create",controller="api/v1/statuses",status="200"} [1-9]' /tmp/double/metrics.txt
check 'exporter: Sidekiq jobs (mastodon_sidekiq_jobs_total per job and queue)' \
  grep -q '^mastodon_sidekiq_jobs_total{job_name="Double::StatusWorker",queue="ingress"} [1-9]' /tmp/double/metrics.txt
check 'exporter: puma and process gauges (mastodon_puma_*, mastodon_rss), collector_working' sh -c \
  "grep -q '^mastodon_puma_max_threads' /tmp/double/metrics.txt && grep -q '^mastodon_rss{type=\"sidekiq\",pid=' /tmp/double/metrics.txt &&
   grep -q '^mastodon_rss{type=\"puma\",pid=' /tmp/double/metrics.txt && grep -q '^mastodon_collector_working 1' /tmp/double/metrics.txt"
# The gem's Instrumentation::SidekiqProcess (config/initializers/sidekiq.rb:41 at v4.6.5): each process finds
# itself in Sidekiq::ProcessSet by hostname and pid, every 30 s; the exporter labels it by queues.
check 'exporter: Sidekiq processes (mastodon_sidekiq_process_concurrency by queues, busy)' wait_for \
  "curl -sf http://127.0.0.1:9394/metrics | grep -q '^mastodon_sidekiq_process_concurrency{.*queues=\"default,fasp,mailers,pull,push,scheduler\".*} 5' &&
   curl -sf http://127.0.0.1:9394/metrics | grep -q '^mastodon_sidekiq_process_busy{.*queues=\"ingress\".*tag=\"ingress-tag\".*} 0'" 140

echo "== [${SECONDS}s] tootctl (Thor without check_unknown_options!: lib/mastodon/cli/base.rb)"
toot() { as_mastodon bin/tootctl "$@"; }
check 'tootctl version' test "$(toot version)" = 4.5.0+double
check 'tootctl accounts create' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl accounts create owner --email owner@mastodon.test --confirmed --role Owner | grep -q 'New password: [0-9a-f]\{32\}'"
check 'tootctl accounts create twice fails' fails bin/tootctl accounts create owner --email other@mastodon.test
check 'tootctl accounts create without --email: required option' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl accounts create x 2>&1 | grep -q \"No value provided for required options '--email'\""
check 'tootctl unknown option becomes an argument and is refused (exit 1)' sh -c \
  "out=\$(runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl media remove --frobnicate 2>&1); [ \$? -eq 1 ] && echo \"\$out\" | grep -qF 'was called with arguments [\"--frobnicate\"]'"
check 'tootctl feeds build --bogus: taken as USERNAME, No such account (exit 1)' sh -c \
  "out=\$(runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl feeds build --bogus 2>&1); [ \$? -eq 1 ] && echo \"\$out\" | grep -q 'No such account'"
check 'tootctl accounts modify --reset_password (underscores accepted, as Thor)' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl accounts modify owner --reset_password | grep -q 'New password'"
check 'tootctl feeds build' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl feeds build | grep -q 'for 1 account' && [ \$(redis-cli zcard feed:home:1) -ge 8 ]"
as_mastodon sh -c 'mkdir -p public/system/media_attachments/files/999/999/999/original && echo orphan >public/system/media_attachments/files/999/999/999/original/x.txt'
check 'tootctl media remove-orphans' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl media remove-orphans | grep -q 'removed 1 orphans' && [ ! -e $live/public/system/media_attachments/files/999/999/999/original/x.txt ]"
check 'tootctl media remove --days 0' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl media remove --days 0 | grep -q 'Removed [1-9][0-9]* media'"
check 'tootctl media remove --days x: numeric option refused' fails bin/tootctl media remove --days x
sql "INSERT INTO preview_cards (url, created_at) VALUES ('https://old.test', now() - interval '200 days')" >/dev/null
check 'tootctl preview_cards remove --days 180' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl preview_cards remove --days 180 | grep -q 'Removed 1 preview'"
check 'tootctl cache clear' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl cache clear | grep -q OK && [ -z \"\$(redis-cli --scan --pattern 'cache:*')\" ]"
check 'tootctl search deploy (ES disabled)' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl search deploy | grep -q disabled"
check 'tootctl settings registrations close' as_mastodon bin/tootctl settings registrations close
check 'tootctl unknown command exits 1' fails bin/tootctl frobnicate
check 'tootctl with PREPARED_STATEMENTS=false' as_mastodon env PREPARED_STATEMENTS=false bin/tootctl feeds build

echo "== [${SECONDS}s] S3 (fake endpoint: checks addressing, ACL, keys and URLs, not the signature itself)"
stop sidekiq-ingress
start fake-s3 ruby "$here/fake-s3.rb" 9000 /tmp/double/s3.requests
start sidekiq-s3 env S3_ENABLED=true S3_BUCKET=media S3_ENDPOINT=http://127.0.0.1:9000 S3_REGION=eu-west-1 \
  AWS_ACCESS_KEY_ID=AKIDOUBLE AWS_SECRET_ACCESS_KEY=secret S3_ALIAS_HOST=media.mastodon.test \
  bundle exec sidekiq -c 2 -q ingress
sleep 1
jid=$(post -d 'status=to s3' -d queue=ingress | json job_id)
check 'S3 job recorded the alias URL' wait_for "curl -sf http://127.0.0.1:3000/api/v1/jobs/$jid | json media_url | grep -qx 'https://media.mastodon.test/media_attachments/files/[0-9/]*/original/status-[0-9]*.txt'" 40
check 'S3 PUT is path-style, public-read, SigV4 with the configured key' sh -c \
  "grep -q '^PUT /media/media_attachments/files/.*/original/status-.*\.txt HTTP/1.1' /tmp/double/s3.requests &&
   grep -qi '^x-amz-acl: public-read' /tmp/double/s3.requests &&
   grep -qi '^authorization: AWS4-HMAC-SHA256 Credential=AKIDOUBLE/[0-9]*/eu-west-1/s3/aws4_request' /tmp/double/s3.requests &&
   grep -qx 'to s3' /tmp/double/s3.requests"
stop sidekiq-s3; stop fake-s3

echo "== [${SECONDS}s] failures (health endpoints check nothing: app/controllers/health_controller.rb, streaming/index.js:248)"
systemctl stop redis-server
check 'web /health still 200 without Redis' wait_for '[ "$(curl -sf http://127.0.0.1:3000/health)" = OK ]' 10
check 'streaming health still 200 without Redis' wait_for '[ "$(curl -sf http://127.0.0.1:4000/api/v1/streaming/health)" = OK ]' 10
systemctl start redis-server
systemctl stop postgresql
wait_for '! runuser -u postgres -- pg_isready -q -h 127.0.0.1' 40
check 'web /health still 200 without PostgreSQL' wait_for '[ "$(curl -sf http://127.0.0.1:3000/health)" = OK ]' 10
check 'POST fails without PostgreSQL' test "$(code -d status=down http://127.0.0.1:3000/api/v1/statuses)" = 500
check 'streaming with a token fails without PostgreSQL (500), health still 200' test \
  "$(code 'http://127.0.0.1:4000/api/v1/streaming/public?access_token=whatever') $(curl -sf http://127.0.0.1:4000/api/v1/streaming/health)" = '500 OK'
systemctl start postgresql
wait_for 'runuser -u postgres -- psql -c "select 1"' 60
check 'POST works after PostgreSQL restart (stale pooled connections replaced)' sh -c \
  'for i in 1 2 3 4 5 6 7 8 9 10; do curl -sf -d status=again http://127.0.0.1:3000/api/v1/statuses >/dev/null || exit 1; done'
check 'websocket works after Redis restart' node "$here/ws-expect.js" \
  --ws 'ws://127.0.0.1:4000/api/v1/streaming?stream=public' --post http://127.0.0.1:3000/api/v1/statuses

echo "== [${SECONDS}s] upgrade to v4.5.1"
booted=$(curl -sf http://127.0.0.1:3000/api/v1/instance | json served_by.booted_at)
check 'git checkout v4.5.1' as_mastodon sh -c 'git fetch -q --tags && git checkout -q v4.5.1'
check 'bundle install --local' as_mastodon bundle install --local
check 'web still reports the version it loaded at boot (4.5.0) after the checkout' sh -c \
  "curl -sf http://127.0.0.1:3000/api/v1/instance | grep -q '\"version\":\"4.5.0+double\"'"
check 'pre-deployment migrations (SKIP_POST_DEPLOYMENT_MIGRATIONS=true)' as_mastodon env SKIP_POST_DEPLOYMENT_MIGRATIONS=true bundle exec rails db:migrate
check 'pre pass applied only 20250201000000, on 127.0.0.1:5432' test \
  "$(sql "SELECT pass, versions, server_port, client_port FROM migration_runs ORDER BY id DESC LIMIT 1")" = 'pre|{20250201000000}|5432|5432'
jid=$(post -d 'status=old code' | json job_id)
check 'old v4.5.0 web still posts after the pre pass; the old Sidekiq records app_version 4.5.0' \
  wait_for "[ \"\$(curl -sf http://127.0.0.1:3000/api/v1/jobs/$jid | json app_version)\" = 4.5.0 ]" 40
check 'assets:precompile for v4.5.1' as_mastodon bundle exec rails assets:precompile
kill -USR2 "$(cat /tmp/double/web.pid)"  # puma restart: loads the new code
check 'web serves v4.5.1 after SIGUSR2, workers booted again' wait_for \
  "curl -sf http://127.0.0.1:3000/api/v1/instance | grep -q 4.5.1+double && [ \"\$(curl -sf http://127.0.0.1:3000/api/v1/instance | json served_by.booted_at)\" != '$booted' ]" 60
check 'v4.5.1 writes the new column' sh -c "curl -sf -d status=new -d language=de http://127.0.0.1:3000/api/v1/statuses | grep -q '\"language\":\"de\"'"
check 'post-deployment migrations' as_mastodon bundle exec rails db:migrate
check 'post pass applied only 20250201000100' test "$(sql "SELECT pass, versions FROM migration_runs ORDER BY id DESC LIMIT 1")" = 'post|{20250201000100}'
check 'a second migrate applies nothing' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bundle exec rails db:migrate | grep -q '0 migration'"
check 'db:version' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bundle exec rails db:version | grep -q 'Current version: 20250201000100'"
check 'every migration recorded once' test "$(sql "SELECT count(*), count(DISTINCT version) FROM schema_migrations")" = '8|8'
kill -USR1 "$(cat /tmp/double/web.pid)"  # phased restart request (a full restart with preload_app!)
sleep 2
check 'web answers after SIGUSR1' wait_for '[ "$(curl -sf http://127.0.0.1:3000/health)" = OK ]' 60

for p in exporter web sidekiq-main sidekiq-ingress sidekiq-s3 fake-s3 streaming streaming-tls; do stop "$p"; done
echo "== [${SECONDS}s] db:setup over a production database with DISABLE_DATABASE_ENVIRONMENT_CHECK present (empty): data loss, as upstream"
before=$(sql "SELECT count(*) FROM statuses")
check 'db:setup with DISABLE_DATABASE_ENVIRONMENT_CHECK= drops every table and reloads the schema' sh -c \
  "runuser -u mastodon -- env -C $live RAILS_ENV=production DISABLE_DATABASE_ENVIRONMENT_CHECK= bundle exec rails db:setup >/dev/null 2>&1 &&
   [ $before -gt 0 ] && [ \"\$(runuser -u postgres -- psql -tA -d mastodon_production -c 'SELECT count(*) FROM statuses')\" = 0 ]"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
