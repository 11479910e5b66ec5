#!/usr/bin/env node
'use strict';
// End-to-end check of a Mastodon (test double) deployment's streaming path: opens a WebSocket,
// POSTs a status carrying a random marker through the web app, and exits 0 only when the
// status comes back over the socket as an "update" event within the timeout.
//
//   node ws-expect.js --ws URL --post URL [--token T | --no-token] [--queue Q] [--host NAME] [--insecure] [--timeout S] [--settle MS]
//
//   --ws       e.g. wss://mastodon.test/api/v1/streaming?stream=public or ws://127.0.0.1:4000/api/v1/streaming?stream=public
//   --post     e.g. https://mastodon.test/api/v1/statuses or http://127.0.0.1:3000/api/v1/statuses
//   --token    access token sent as "Authorization: Bearer" (streaming requires one, as upstream's);
//              default: a new one from the double-only POST /api/v1/double/tokens next to --post
//   --no-token connect without a token (the server must refuse with 401)
//   --host     Host header (and TLS server name) for every request, when the URLs use addresses
//   --insecure accept any TLS certificate (self-signed test certificates)
// Needs Debian's node-ws (/usr/share/nodejs/ws). Prints the received event as JSON on success.
const http = require('http');
const https = require('https');
const crypto = require('crypto');
const WebSocket = require('ws');

const args = { timeout: '10', settle: '1000', queue: 'default' };
for (let i = 2; i < process.argv.length; i += 1) {
  const key = process.argv[i].replace(/^--/, '');
  if (key === 'insecure') args.insecure = true;
  else if (key === 'no-token') args.noToken = true;
  else args[key] = process.argv[(i += 1)];
}
if (!args.ws || !args.post) {
  console.error('usage: ws-expect.js --ws URL --post URL [--token T | --no-token] [--queue Q] [--host NAME] [--insecure] [--timeout S] [--settle MS]');
  process.exit(2);
}

const marker = `ws-expect-${crypto.randomBytes(6).toString('hex')}`;
const tls = args.insecure ? { rejectUnauthorized: false } : {};
const headers = args.host ? { Host: args.host } : {};
const servername = args.host ? { servername: args.host } : {};
const fail = (message) => { console.error(`FAIL: ${message}`); process.exit(1); };
setTimeout(() => fail(`no update carrying ${marker} within ${args.timeout} s`), +args.timeout * 1000);

function request(target, payload, done) {
  const body = JSON.stringify(payload);
  const url = new URL(target);
  const req = (url.protocol === 'https:' ? https : http).request(url, {
    method: 'POST', ...tls, ...servername,
    headers: { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
  }, (res) => {
    let data = '';
    res.on('data', (chunk) => { data += chunk; });
    res.on('end', () => {
      if (res.statusCode !== 200) fail(`POST ${target} answered ${res.statusCode}: ${data}`);
      done(data);
    });
  });
  req.on('error', (err) => fail(`POST ${target}: ${err.message}`));
  req.end(body);
}

const post = () => request(args.post, { status: marker, queue: args.queue }, (data) => console.error(`posted: ${data}`));

function connect(token) {
  const auth = token ? { Authorization: `Bearer ${token}` } : {};
  const ws = new WebSocket(args.ws, { headers: { ...headers, ...auth }, ...tls, ...servername });
  ws.on('open', () => {
    if (args.noToken) fail(`WebSocket ${args.ws}: accepted a connection without an access token`);
    setTimeout(post, +args.settle);
  });
  ws.on('error', (err) => fail(`WebSocket ${args.ws}: ${err.message}`));
  ws.on('unexpected-response', (req, res) => {
    if (args.noToken && res.statusCode === 401) {
      console.log(`refused without a token: HTTP 401 ${res.headers['x-error-message'] || ''}`.trim());
      process.exit(0);
    }
    fail(`WebSocket ${args.ws}: HTTP ${res.statusCode} ${res.headers['x-error-message'] || ''}`.trim());
  });
  ws.on('message', (data) => {
    const event = JSON.parse(data);
    if (event.event !== 'update' || !String(event.payload).includes(marker)) return;
    console.log(JSON.stringify(event));
    process.exit(0);
  });
}

if (args.token || args.noToken) connect(args.token);
else request(new URL('/api/v1/double/tokens', args.post).href, { scopes: 'read' }, (data) => connect(JSON.parse(data).access_token));
