#!/usr/bin/env bash
# End-to-end test of the Mastodon TEST DOUBLE on one Debian 13 (or 12) host (run as root inside a
# throw-away container, see e2e-container.sh): installs the Debian packages, PostgreSQL and Redis,
# clones v4.5.0 from REPO into /home/mastodon/live as user mastodon, installs, sets up, starts
# web, two sidekiq processes and streaming as background processes, exercises the contract,
# then upgrades to v4.5.1 with the two migration passes. Ends with "N passed, N failed".
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
json() { ruby -rjson -e 'v = JSON.parse(STDIN.read); ARGV[0].split(".").each { |k| v = v.is_a?(Array) ? v[k.to_i] : v[k] }; puts v' "$1"; }
wait_for() { for _ in $(seq 1 "${2:-60}"); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done; return 1; }
start() { # NAME COMMAND... : background process of user mastodon, pid in /tmp/double/NAME.pid, log in NAME.log
  local name=$1; shift
  as_mastodon sh -c 'echo $$ >"$0"; exec "$@"' "/tmp/double/$name.pid" "$@" >"/tmp/double/$name.log" 2>&1 &
}
stop() { [ -f "/tmp/double/$1.pid" ] && kill "$(cat "/tmp/double/$1.pid")" 2>/dev/null; rm -f "/tmp/double/$1.pid"; }

echo "== packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends ruby ruby-rack puma ruby-sidekiq ruby-pg ruby-redis ruby-connection-pool \
  ruby-aws-sdk-s3 bundler rake nodejs node-ws node-redis node-pg yarnpkg git \
  postgresql redis-server curl ca-certificates procps >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }
systemctl start postgresql redis-server
wait_for 'runuser -u postgres -- psql -c "select 1"' 60
runuser -u postgres -- psql -q -c "CREATE ROLE mastodon LOGIN PASSWORD 'secret'" 2>/dev/null
runuser -u postgres -- psql -q -c "SET client_min_messages TO warning" -c "DROP DATABASE IF EXISTS mastodon_production WITH (FORCE)"
runuser -u postgres -- psql -q -c "CREATE DATABASE mastodon_production OWNER mastodon"
redis-cli flushall >/dev/null
id mastodon >/dev/null 2>&1 || useradd -m -s /bin/bash mastodon
mkdir -p /tmp/double && chmod 777 /tmp/double

echo "== install v4.5.0"
rm -rf "$live"
# git >= 2.45.1 refuses to clone a local repository owned by another user (safe.directory)
[ -d "${repo#file://}" ] && chown -R mastodon: "${repo#file://}"
check 'git clone v4.5.0 as mastodon' runuser -u mastodon -- git clone -q --branch v4.5.0 "$repo" "$live"
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
REDIS_URL=redis://127.0.0.1:6379/0
S3_ENABLED=false
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
check 'db:setup' as_mastodon bundle exec rails db:setup
check 'db:setup refuses a second time' sh -c "! runuser -u mastodon -- env -C $live RAILS_ENV=production bundle exec rails db:setup"
check 'assets:precompile' as_mastodon bundle exec rails assets:precompile
digest1=$(cat "$live"/public/packs/manifest.json | sha256sum)
as_mastodon bundle exec rails assets:precompile >/dev/null
check 'assets:precompile is deterministic' test "$digest1" = "$(cat "$live"/public/packs/manifest.json | sha256sum)"

echo "== processes"
for p in web sidekiq-main sidekiq-ingress sidekiq-s3 fake-s3 streaming; do stop "$p"; done
start web env WEB_CONCURRENCY=2 MAX_THREADS=5 PORT=3000 bundle exec puma -C config/puma.rb
start sidekiq-main env DB_POOL=5 bundle exec sidekiq -c 5 -q default,8 -q push,6 -q mailers,2 -q pull -q scheduler -q fasp
start sidekiq-ingress env DB_POOL=2 bundle exec sidekiq -c 3 -q ingress -g ingress-tag
start streaming env PORT=4000 node ./streaming
check 'web /health 200 OK' wait_for '[ "$(curl -sf http://127.0.0.1:3000/health)" = OK ]' 60
check 'streaming health 200 OK' wait_for '[ "$(curl -sf http://127.0.0.1:4000/api/v1/streaming/health)" = OK ]' 30
check 'sidekiq warns when DB_POOL < concurrency' wait_for 'grep -q "DB_POOL=2 is lower than the Sidekiq concurrency 3" /tmp/double/sidekiq-ingress.log' 30
check 'both sidekiq processes registered in Redis' wait_for '[ "$(redis-cli scard processes)" = 2 ]' 60

echo "== web and sidekiq"
post() { curl -sf -X POST http://127.0.0.1:3000/api/v1/statuses "$@"; }
for q in default push ingress mailers pull scheduler fasp; do
  jid=$(post -d "status=hello $q" -d "queue=$q" | json job_id)
  check "job on queue $q ran on queue $q" wait_for "[ \"\$(curl -sf http://127.0.0.1:3000/api/v1/jobs/$jid | json queue)\" = $q ]" 40
done
resp=$(post -H 'Content-Type: application/json' -d '{"status":"ingress json","queue":"ingress"}')
id=$(echo "$resp" | json id) jid=$(echo "$resp" | json job_id)
wait_for "curl -sf http://127.0.0.1:3000/api/v1/jobs/$jid" 40
job=$(curl -sf "http://127.0.0.1:3000/api/v1/statuses/$id/job")
check 'job_runs row: tag, hostname, pid, identity' test "$(echo "$job" | json tag)" = ingress-tag -a \
  "$(echo "$job" | json hostname)" = "$(hostname)" -a "$(echo "$job" | json pid)" = "$(cat /tmp/double/sidekiq-ingress.pid)" \
  -a -n "$(echo "$job" | json identity)"
check 'media stored under public/system' test "$(cat "$live/public/system/$(echo "$job" | json media_key)")" = 'ingress json'
check 'GET status says which server answered' sh -c \
  "curl -sf http://127.0.0.1:3000/api/v1/statuses/$id | grep -q '\"in_recovery\":false'"
check 'unknown queue is refused (422)' test "$(curl -s -o /dev/null -w '%{http_code}' -d status=x -d queue=nope http://127.0.0.1:3000/api/v1/statuses)" = 422
check 'instance: uri, version, double marker' sh -c \
  "curl -sf http://127.0.0.1:3000/api/v1/instance | grep -q '\"uri\":\"mastodon.test\",\"domain\":\"mastodon.test\",\"title\":\"Mastodon (test double)\",\"version\":\"4.5.0+double\",\"double\":true'"
check 'home page links the precompiled pack, served from public/' sh -c \
  "curl -sf http://127.0.0.1:3000/\$(curl -sf http://127.0.0.1:3000/ | grep -o 'packs/assets/application-[0-9a-f]*.js') | grep -q 'test double'"
check 'X-Forwarded-For honoured from a trusted proxy' test \
  "$(curl -sf -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:3000/api/v1/double/whoami | json remote_ip)" = 203.0.113.7

echo "== streaming"
check 'websocket receives the posted status (ws-expect.js)' node "$here/ws-expect.js" \
  --ws 'ws://127.0.0.1:4000/api/v1/streaming?stream=public' --post http://127.0.0.1:3000/api/v1/statuses --queue push
curl -sN --max-time 4 http://127.0.0.1:4000/api/v1/streaming/public >/tmp/double/sse.out &
sse=$!; sleep 1; post -d 'status=over sse' >/dev/null; wait $sse
check 'server-sent events receive the posted status' grep -q 'over sse' /tmp/double/sse.out

echo "== tootctl"
check 'tootctl version' test "$(as_mastodon bin/tootctl version)" = 4.5.0+double
check 'tootctl accounts create' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl accounts create owner --email owner@mastodon.test --confirmed --role Owner | grep -q 'New password: [0-9a-f]\{32\}'"
check 'tootctl accounts create twice fails' sh -c "! runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl accounts create owner --email other@mastodon.test"
check 'tootctl accounts modify --reset-password' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl accounts modify owner --reset-password | grep -q 'New password'"
check 'tootctl feeds build' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl feeds build | grep -q 'for 1 account' && [ \$(redis-cli zcard feed:home:1) -ge 8 ]"
as_mastodon sh -c 'mkdir -p public/system/media_attachments/files/999/999/999/original && echo orphan >public/system/media_attachments/files/999/999/999/original/x.txt'
check 'tootctl media remove-orphans' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl media remove-orphans | grep -q 'removed 1 orphans' && [ ! -e $live/public/system/media_attachments/files/999/999/999/original/x.txt ]"
check 'tootctl media remove --days 0' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl media remove --days 0 | grep -q 'Removed [1-9][0-9]* media'"
runuser -u postgres -- psql -q -d mastodon_production -c "INSERT INTO preview_cards (url, created_at) VALUES ('https://old.test', now() - interval '200 days')"
check 'tootctl preview_cards remove --days 180' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl preview_cards remove --days 180 | grep -q 'Removed 1 preview'"
check 'tootctl cache clear' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl cache clear | grep -q OK && [ -z \"\$(redis-cli --scan --pattern 'cache:*')\" ]"
check 'tootctl search deploy (ES disabled)' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl search deploy | grep -q disabled"
check 'tootctl settings registrations close' as_mastodon bin/tootctl settings registrations close
check 'tootctl unknown command exits 1' sh -c "! runuser -u mastodon -- env -C $live RAILS_ENV=production bin/tootctl frobnicate"
check 'tootctl with PREPARED_STATEMENTS=false' as_mastodon env PREPARED_STATEMENTS=false bin/tootctl feeds build

echo "== S3 (fake endpoint: checks addressing, ACL, keys and URLs, not the signature itself)"
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

echo "== failures"
systemctl stop redis-server
check 'web /health 503 without Redis' wait_for '[ "$(curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:3000/health)" = 503 ]' 20
check 'streaming health 503 without Redis' wait_for '[ "$(curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:4000/api/v1/streaming/health)" = 503 ]' 20
systemctl start redis-server
check 'web /health back to 200' wait_for '[ "$(curl -sf http://127.0.0.1:3000/health)" = OK ]' 30
systemctl stop postgresql
check 'web /health 503 without PostgreSQL' wait_for '[ "$(curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:3000/health)" = 503 ]' 20
systemctl start postgresql
check 'web /health back to 200 after PostgreSQL restart' wait_for '[ "$(curl -sf http://127.0.0.1:3000/health)" = OK ]' 40
check 'POST works after PostgreSQL restart (stale pooled connections replaced)' sh -c \
  'for i in 1 2 3 4 5 6 7 8 9 10; do curl -sf -d status=again http://127.0.0.1:3000/api/v1/statuses >/dev/null || exit 1; done'
check 'websocket works after Redis restart' node "$here/ws-expect.js" \
  --ws 'ws://127.0.0.1:4000/api/v1/streaming?stream=public' --post http://127.0.0.1:3000/api/v1/statuses

echo "== upgrade to v4.5.1"
check 'git checkout v4.5.1' as_mastodon sh -c 'git fetch -q --tags && git checkout -q v4.5.1'
check 'bundle install --local' as_mastodon bundle install --local
check 'pre-deployment migrations (SKIP_POST_DEPLOYMENT_MIGRATIONS=true)' as_mastodon env SKIP_POST_DEPLOYMENT_MIGRATIONS=true bundle exec rails db:migrate
sql() { runuser -u postgres -- psql -tA -d mastodon_production -c "$1"; }
check 'pre pass applied only 20250201000000' test "$(sql "SELECT pass, versions FROM migration_runs ORDER BY id DESC LIMIT 1")" = 'pre|{20250201000000}'
check 'old v4.5.0 web still posts after the pre pass' post -d 'status=old code'
check 'assets:precompile for v4.5.1' as_mastodon bundle exec rails assets:precompile
kill -USR2 "$(cat /tmp/double/web.pid)"  # puma restart: loads the new code
check 'web serves v4.5.1 after SIGUSR2' wait_for 'curl -sf http://127.0.0.1:3000/api/v1/instance | grep -q 4.5.1+double' 60
check 'v4.5.1 writes the new column' sh -c "curl -sf -d status=new -d language=de http://127.0.0.1:3000/api/v1/statuses | grep -q '\"language\":\"de\"'"
check 'post-deployment migrations' as_mastodon bundle exec rails db:migrate
check 'post pass applied only 20250201000100' test "$(sql "SELECT pass, versions FROM migration_runs ORDER BY id DESC LIMIT 1")" = 'post|{20250201000100}'
check 'a second migrate applies nothing' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bundle exec rails db:migrate | grep -q '0 migration'"
check 'db:version' sh -c "runuser -u mastodon -- env -C $live RAILS_ENV=production bundle exec rails db:version | grep -q 'Current version: 20250201000100'"
check 'every migration recorded once' test "$(sql "SELECT count(*), count(DISTINCT version) FROM schema_migrations")" = '6|6'
kill -USR1 "$(cat /tmp/double/web.pid)"  # phased restart request (a full restart with preload_app!)
sleep 2
check 'web answers after SIGUSR1' wait_for '[ "$(curl -sf http://127.0.0.1:3000/health)" = OK ]' 60

for p in web sidekiq-main sidekiq-ingress sidekiq-s3 fake-s3 streaming; do stop "$p"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
