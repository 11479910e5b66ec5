'use strict';
// Streaming server of the Mastodon TEST DOUBLE (not Mastodon): `NODE_ENV=production node ./streaming`.
// Same environment as Mastodon's (PORT, BIND, SOCKET, REDIS_*, DB_*), same Redis channels
// (timeline:public, ...) and the same WebSocket/SSE endpoints for public timelines. No access
// token is needed: the double streams public timelines only. Modules come from Debian's
// node-ws, node-redis and node-pg (/usr/share/nodejs), so package.json has no dependencies.
const fs = require('fs');
const http = require('http');
const path = require('path');
const WebSocket = require('ws');
const { createClient } = require('redis');
const pg = require('pg');

// Like dotenv: the file fills in what the environment does not already set.
function loadEnv() {
  const file = path.resolve(__dirname, '..', process.env.NODE_ENV === 'production' ? '.env.production' : '.env');
  if (!fs.existsSync(file)) return;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^\s*(?:export\s+)?([A-Za-z_]\w*)\s*=\s*(.*?)\s*$/);
    if (!m || m[1] in process.env) continue;
    const quoted = m[2].match(/^(["'])(.*)\1$/);
    process.env[m[1]] = quoted ? quoted[2] : m[2].replace(/\s+#.*$/, '');
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

const auth = env.REDIS_PASSWORD ? `${encodeURIComponent(env.REDIS_USER || '')}:${encodeURIComponent(env.REDIS_PASSWORD)}@` : '';
const redisUrl = env.REDIS_URL || `redis://${auth}${env.REDIS_HOST || 'localhost'}:${env.REDIS_PORT || 6379}/${env.REDIS_DB || 0}`;
const sslmode = env.DB_SSLMODE || '';
const pool = new pg.Pool({
  ...(env.DATABASE_URL ? { connectionString: env.DATABASE_URL }
    : { host: env.DB_HOST, port: +(env.DB_PORT || 5432), database: env.DB_NAME, user: env.DB_USER, password: env.DB_PASS }),
  ssl: ['require', 'verify-ca', 'verify-full'].includes(sslmode) ? { rejectUnauthorized: sslmode !== 'require' } : false,
  max: +(env.DB_POOL || 10),
  connectionTimeoutMillis: 3000,
});
pool.on('error', (err) => console.error('PostgreSQL:', err.message));

const redis = createClient({ url: redisUrl, disableOfflineQueue: true });
const subscriber = createClient({ url: redisUrl }); // queues SUBSCRIBE until Redis is reachable
for (const client of [redis, subscriber]) client.on('error', (err) => console.error('Redis:', err.message));

// One Redis subscription per channel, shared by every client listening to it.
const listeners = new Map();
function subscribe(channel, fn) {
  if (!listeners.has(channel)) {
    listeners.set(channel, new Set());
    subscriber.subscribe(channel, (message) => listeners.get(channel)?.forEach((f) => f(message)))
      .catch((err) => console.error(`SUBSCRIBE ${channel}:`, err.message));
  }
  listeners.get(channel).add(fn);
}
function unsubscribe(channel, fn) {
  const set = listeners.get(channel);
  if (!set || !set.delete(fn) || set.size) return;
  listeners.delete(channel);
  subscriber.unsubscribe(channel).catch(() => {});
}

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

const timeout = (promise) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000))]);

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/api/v1/streaming/health') {
    Promise.all([timeout(redis.ping()), timeout(pool.query('SELECT 1'))])
      .then(() => { res.writeHead(200, { 'Content-Type': 'text/plain' }); res.end('OK'); })
      .catch((err) => { console.error('health check failed:', err.message); res.writeHead(503, { 'Content-Type': 'text/plain' }); res.end('Service Unavailable'); });
    return;
  }
  const sse = url.pathname.match(/^\/api\/v1\/streaming\/(public(?:\/local)?|hashtag)\/?$/);
  const channel = sse && channelFor(sse[1].replace('/', ':'), Object.fromEntries(url.searchParams));
  if (!channel) {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'Not found' }));
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'private, no-store', 'X-Accel-Buffering': 'no' });
  res.write(':)\n');
  const fn = (message) => { const { event, payload } = decode(message); res.write(`event: ${event}\ndata: ${payload}\n\n`); };
  const heartbeat = setInterval(() => res.write(':thump\n'), 15000);
  subscribe(channel, fn);
  req.on('close', () => { clearInterval(heartbeat); unsubscribe(channel, fn); });
});

const wss = new WebSocket.Server({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  if (!/^\/api\/v1\/streaming\/?$/.test(url.pathname)) {
    socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req, url));
});

function onConnection(ws, req, url) {
  const subs = new Map();
  const add = (stream, params) => {
    const channel = channelFor(stream, params);
    if (!channel) return ws.send(JSON.stringify({ error: 'Unknown stream type', status: 400 }));
    if (subs.has(channel)) return;
    const fn = (message) => ws.send(JSON.stringify({ stream: [stream], ...decode(message) }));
    subs.set(channel, fn);
    subscribe(channel, fn);
  };
  const remove = (stream, params) => {
    const channel = channelFor(stream, params);
    if (subs.has(channel)) { unsubscribe(channel, subs.get(channel)); subs.delete(channel); }
  };
  console.log(`WebSocket connection from ${req.headers['x-forwarded-for'] || req.socket.remoteAddress}`);
  ws.on('message', (data) => {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (msg.type === 'subscribe') add(msg.stream, msg);
    if (msg.type === 'unsubscribe') remove(msg.stream, msg);
  });
  ws.on('close', () => subs.forEach((fn, channel) => unsubscribe(channel, fn)));
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

const onListen = () => console.log(`Streaming API (Mastodon test double) listening on ${env.SOCKET || `${env.BIND || '127.0.0.1'}:${env.PORT || 4000}`}`);
if (env.SOCKET) server.listen(env.SOCKET, onListen);
else server.listen(+(env.PORT || 4000), env.BIND || '127.0.0.1', onListen);
redis.connect().catch((err) => console.error('Redis:', err.message));
subscriber.connect().catch((err) => console.error('Redis:', err.message));
