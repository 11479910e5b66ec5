'use strict';
// Streaming server of the Mastodon TEST DOUBLE (not Mastodon): `NODE_ENV=production node ./streaming`.
// Same environment as Mastodon's (PORT, BIND, SOCKET, REDIS_*, DB_*), same Redis channels
// (timeline:public, ...), the same WebSocket/SSE endpoints for public timelines, the same access
// token lookup in PostgreSQL, the same /metrics and a health check that checks nothing. Modules
// come from Debian (/usr/share/nodejs): node-ws, node-redis, node-pg, dotenv (shipped by
// yarnpkg on Debian 13) and prom-client (shipped by node-configurable-http-proxy), so
// package.json has no dependencies.
const fs = require('fs');
const http = require('http');
const path = require('path');
const WebSocket = require('ws');
const { createClient } = require('redis');
const pg = require('pg');
const metrics = require('prom-client');

const environment = process.env.NODE_ENV || 'development';

// streaming/index.js:24-33 (v4.5.0): dotenv loads ../.env.production in production, else ../.env;
// variables already in the environment win. Debian 12 has no node-dotenv: a parser following
// dotenv 16's documented rules stands in.
function loadEnv() {
  const file = path.resolve(__dirname, '..', environment === 'production' ? '.env.production' : '.env');
  try {
    require('dotenv').config({ path: file });
    return;
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
  }
  if (!fs.existsSync(file)) return;
  for (const line of fs.readFileSync(file, 'utf8').split(/\r?\n/)) {
    const m = line.match(/^\s*(?:export\s+)?([\w.-]+)\s*=\s*(.*)$/);
    if (!m || m[1] in process.env) continue;
    const quoted = m[2].match(/^(['"`])(.*?)\1\s*(?:#.*)?$/);
    let value = quoted ? quoted[2] : m[2].replace(/#.*$/, '').trim();
    if (quoted && quoted[1] === '"') value = value.replace(/\\n/g, '\n');
    process.env[m[1]] = value;
  }
}

loadEnv();
const env = process.env;
const missing = [];
if (!env.REDIS_URL && !env.REDIS_HOST) missing.push('REDIS_URL or REDIS_HOST');
if (!env.DATABASE_URL && !(env.DB_HOST && env.DB_NAME && env.DB_USER)) missing.push('DATABASE_URL or DB_HOST+DB_NAME+DB_USER');
if (missing.length) {
  console.error(`Mastodon streaming (test double) refuses to start: missing ${missing.join(', ')}`);
  process.exit(1);
}
if (env.STREAMING_CLUSTER_NUM) console.warn('STREAMING_CLUSTER_NUM is ignored: run one process per port instead');

// Read once at boot, like the rest of the code: what this process runs, not what is on disk now.
const LOADED = { version: fs.readFileSync(path.resolve(__dirname, '..', 'VERSION'), 'utf8').trim(), loadedAt: new Date().toISOString() };

// streaming/database.js:82-98 (v4.5.0): without DATABASE_URL, DB_SSLMODE "disable" (or empty)
// means no TLS, "no-verify" TLS without verification, and ANY other value (prefer, require,
// verify-full, ...) mandatory TLS with a verified certificate: against a server or PgBouncer
// without TLS, every query fails. Unset: node-pg's default (PGSSLMODE, else no TLS).
function pgConfig() {
  const base = env.DATABASE_URL ? { connectionString: env.DATABASE_URL }
    : { host: env.DB_HOST, port: +(env.DB_PORT || 5432), database: env.DB_NAME, user: env.DB_USER, password: env.DB_PASS || '' };
  if (!env.DATABASE_URL && env.DB_SSLMODE) {
    if (env.DB_SSLMODE === 'disable') base.ssl = false;
    else if (env.DB_SSLMODE === 'no-verify') base.ssl = { rejectUnauthorized: false };
    else base.ssl = {};
  }
  return { ...base, max: +(env.DB_POOL || 10), connectionTimeoutMillis: 15000, application_name: '' };
}
const pool = new pg.Pool(pgConfig());
pool.on('error', (err) => console.error('PostgreSQL:', err.message));

const auth = env.REDIS_PASSWORD ? `${encodeURIComponent(env.REDIS_USER || '')}:${encodeURIComponent(env.REDIS_PASSWORD)}@` : '';
const redisUrl = env.REDIS_URL || `redis://${auth}${env.REDIS_HOST || 'localhost'}:${env.REDIS_PORT || 6379}/${env.REDIS_DB || 0}`;
const subscriber = createClient({ url: redisUrl }); // queues SUBSCRIBE until Redis is reachable
subscriber.on('error', (err) => console.error('Redis:', err.message));

// streaming/metrics.js (v4.5.0): prom-client's default registry, no prefix, Node's default metrics.
const CHANNEL_NAMES = ['system', 'user', 'user:notification', 'list', 'direct', 'public', 'public:media', 'public:local',
  'public:local:media', 'public:remote', 'public:remote:media', 'hashtag', 'hashtag:local'];
metrics.collectDefaultMetrics();
for (const [name, help, key] of [
  ['pg_pool_total_connections', 'The total number of clients existing within the pool', 'totalCount'],
  ['pg_pool_idle_connections', 'The number of clients which are not checked out but are currently idle in the pool', 'idleCount'],
  ['pg_pool_waiting_queries', 'The number of queued requests waiting on a client when all clients are checked out', 'waitingCount'],
]) new metrics.Gauge({ name, help, collect() { this.set(pool[key]); } });
const connectedClients = new metrics.Gauge({ name: 'connected_clients', help: 'The number of clients connected to the streaming server', labelNames: ['type'] });
const connectedChannels = new metrics.Gauge({ name: 'connected_channels', help: 'The number of channels the streaming server is streaming to', labelNames: ['type', 'channel'] });
const redisSubscriptions = new metrics.Gauge({ name: 'redis_subscriptions', help: 'The number of Redis channels the streaming server is subscribed to' });
const redisMessagesReceived = new metrics.Counter({ name: 'redis_messages_received_total', help: 'The total number of messages the streaming server has received from redis subscriptions' });
const messagesSent = new metrics.Counter({ name: 'messages_sent_total', help: 'The total number of messages the streaming server sent to clients per connection type', labelNames: ['type'] });
redisSubscriptions.set(0);
for (const type of ['websocket', 'eventsource']) {
  connectedClients.set({ type }, 0);
  messagesSent.inc({ type }, 0);
  for (const channel of CHANNEL_NAMES) connectedChannels.set({ type, channel }, 0);
}
redisMessagesReceived.inc(0);

// One Redis subscription per channel, shared by every client listening to it.
const listeners = new Map();
function subscribe(channel, fn) {
  if (!listeners.has(channel)) {
    listeners.set(channel, new Set());
    subscriber.subscribe(channel, (message) => { redisMessagesReceived.inc(); listeners.get(channel)?.forEach((f) => f(message)); })
      .then(() => redisSubscriptions.set(listeners.size))
      .catch((err) => console.error(`SUBSCRIBE ${channel}:`, err.message));
  }
  listeners.get(channel).add(fn);
}
function unsubscribe(channel, fn) {
  const set = listeners.get(channel);
  if (!set || !set.delete(fn) || set.size) return;
  listeners.delete(channel);
  subscriber.unsubscribe(channel).then(() => redisSubscriptions.set(listeners.size)).catch(() => {});
}

// The public streams the double knows, as upstream's channel names (metrics) and Redis channels.
function channelFor(stream, params) {
  if (stream === 'public') return 'timeline:public';
  if (stream === 'public:local') return 'timeline:public:local';
  if (stream === 'hashtag' && params.tag) return `timeline:hashtag:${params.tag.toLowerCase()}`;
  return null;
}

// Rails publishes {"event":"update","payload":"<status JSON>"}; clients get the stream name too.
function decode(message) {
  const { event, payload } = JSON.parse(message);
  return { event, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) };
}

class AuthenticationError extends Error { constructor(message) { super(message); this.status = 401; } }

// streaming/index.js:367-404 (v4.5.0): every stream needs an access token (Authorization: Bearer,
// ?access_token= or Sec-WebSocket-Protocol), looked up in oauth_access_tokens. Unknown or revoked:
// 401; a database error (PostgreSQL down, TLS refused): 500 "An unexpected error occurred".
async function accountFromRequest(req, url) {
  const authorization = req.headers.authorization;
  const accessToken = url.searchParams.get('access_token') || req.headers['sec-websocket-protocol'];
  if (!authorization && !accessToken) throw new AuthenticationError('Missing access token');
  const token = authorization ? authorization.replace(/^Bearer /, '') : accessToken;
  const result = await pool.query('SELECT id, resource_owner_id, scopes FROM oauth_access_tokens WHERE token = $1 AND revoked_at IS NULL LIMIT 1', [token]);
  if (result.rows.length === 0) throw new AuthenticationError('Invalid access token');
  const scopes = result.rows[0].scopes.split(' ');
  // checkScopes (streaming/index.js:444): read or read:statuses for the timelines.
  if (!scopes.some((scope) => ['read', 'read:statuses'].includes(scope))) throw new AuthenticationError('Access token does not have the required scopes');
  return { accessTokenId: result.rows[0].id, accountId: result.rows[0].resource_owner_id, scopes };
}

function errorStatus(err) {
  if (err instanceof AuthenticationError) return { statusCode: err.status, errorMessage: err.message };
  console.error('Error while authenticating:', err.message);
  return { statusCode: 500, errorMessage: 'An unexpected error occurred' };
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  // streaming/index.js:248 (v4.5.0): OK from the process, neither Redis nor PostgreSQL checked.
  if (url.pathname === '/api/v1/streaming/health') {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'private, no-store' });
    res.end('OK');
    return;
  }
  if (url.pathname === '/metrics') {
    metrics.register.metrics().then((output) => {
      res.writeHead(200, { 'Content-Type': metrics.register.contentType, 'Cache-Control': 'private, no-store' });
      res.end(output);
    }).catch(() => { res.writeHead(500, { 'Cache-Control': 'private, no-store' }); res.end(); });
    return;
  }
  // DOUBLE-ONLY: which process answered and the code it loaded at boot.
  if (url.pathname === '/api/v1/streaming/double/whoami') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ version: `${LOADED.version}+double`, loaded_at: LOADED.loadedAt, pid: process.pid, host: require('os').hostname() }));
    return;
  }
  const sse = url.pathname.match(/^\/api\/v1\/streaming\/(public(?:\/local)?|hashtag)\/?$/);
  const stream = sse && sse[1].replace('/', ':');
  const channel = stream && channelFor(stream, Object.fromEntries(url.searchParams));
  const fail = (statusCode, error) => { res.writeHead(statusCode, { 'Content-Type': 'application/json' }); res.end(JSON.stringify({ error })); };
  if (!url.pathname.startsWith('/api/v1/streaming')) return fail(404, 'Not found');
  if (!channel) return fail(400, 'Unknown channel requested');
  accountFromRequest(req, url).then(() => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'private, no-store', 'X-Accel-Buffering': 'no' });
    res.write(':)\n');
    const fn = (message) => {
      const { event, payload } = decode(message);
      res.write(`event: ${event}\ndata: ${payload}\n\n`);
      messagesSent.inc({ type: 'eventsource' });
    };
    const heartbeat = setInterval(() => res.write(':thump\n'), 15000);
    connectedClients.inc({ type: 'eventsource' });
    connectedChannels.inc({ type: 'eventsource', channel: stream });
    subscribe(channel, fn);
    req.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe(channel, fn);
      connectedClients.dec({ type: 'eventsource' });
      connectedChannels.dec({ type: 'eventsource', channel: stream });
    });
  }).catch((err) => { const { statusCode, errorMessage } = errorStatus(err); fail(statusCode, errorMessage); });
});

const wss = new WebSocket.Server({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  const refuse = (statusCode, errorMessage) => socket.end(`HTTP/1.1 ${statusCode} ${http.STATUS_CODES[statusCode]}\r\n` +
    `Connection: close\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nX-Error-Message: ${errorMessage}\r\n\r\n`);
  if (!/^\/api\/v1\/streaming\/?$/.test(url.pathname)) return refuse(404, 'Not found');
  socket.on('error', (err) => console.error('socket:', err.message));
  // As upstream (streaming/index.js:169-215): the token is checked before the upgrade.
  accountFromRequest(req, url)
    .then(() => wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req, url)))
    .catch((err) => { const { statusCode, errorMessage } = errorStatus(err); refuse(statusCode, errorMessage); });
});

function onConnection(ws, req, url) {
  const subs = new Map();
  const add = (stream, params) => {
    const channel = channelFor(stream, params);
    if (!channel) return ws.send(JSON.stringify({ error: 'Unknown stream type', status: 400 }));
    if (subs.has(channel)) return;
    const fn = (message) => { ws.send(JSON.stringify({ stream: [stream], ...decode(message) })); messagesSent.inc({ type: 'websocket' }); };
    subs.set(channel, { fn, stream });
    subscribe(channel, fn);
    connectedChannels.inc({ type: 'websocket', channel: stream });
  };
  const remove = (stream, params) => {
    const channel = channelFor(stream, params);
    if (!subs.has(channel)) return;
    unsubscribe(channel, subs.get(channel).fn);
    connectedChannels.dec({ type: 'websocket', channel: subs.get(channel).stream });
    subs.delete(channel);
  };
  connectedClients.inc({ type: 'websocket' });
  console.log(`WebSocket connection from ${req.headers['x-forwarded-for'] || req.socket.remoteAddress}`);
  ws.on('message', (data) => {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (msg.type === 'subscribe') add(msg.stream, msg);
    if (msg.type === 'unsubscribe') remove(msg.stream, msg);
  });
  ws.on('close', () => {
    connectedClients.dec({ type: 'websocket' });
    subs.forEach(({ fn, stream }, channel) => { unsubscribe(channel, fn); connectedChannels.dec({ type: 'websocket', channel: stream }); });
  });
  ws.isAlive = true;
  ws.on('pong', () => { ws.isAlive = true; });
  if (url.searchParams.get('stream')) add(url.searchParams.get('stream'), Object.fromEntries(url.searchParams));
}

// Drop connections that stopped answering pings, as Mastodon does.
setInterval(() => wss.clients.forEach((ws) => {
  if (!ws.isAlive) return ws.terminate();
  ws.isAlive = false;
  ws.ping();
}), 30000).unref();

const shutdown = () => {
  wss.clients.forEach((ws) => ws.close(1001));
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

const onListen = () => console.log(`Streaming API (Mastodon test double ${LOADED.version}) listening on ${env.SOCKET || `${env.BIND || '127.0.0.1'}:${env.PORT || 4000}`}`);
if (env.SOCKET) server.listen(env.SOCKET, onListen);
else server.listen(+(env.PORT || 4000), env.BIND || '127.0.0.1', onListen);
subscriber.connect().catch((err) => console.error('Redis:', err.message));
