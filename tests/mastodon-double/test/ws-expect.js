#!/usr/bin/env node
'use strict';
// End-to-end check of a Mastodon (test double) deployment's streaming path: opens a WebSocket,
// POSTs a status carrying a random token through the web app, and exits 0 only when the
// status comes back over the socket as an "update" event within the timeout.
//
//   node ws-expect.js --ws URL --post URL [--queue Q] [--host NAME] [--insecure] [--timeout S] [--settle MS]
//
//   --ws       e.g. wss://mastodon.test/api/v1/streaming?stream=public or ws://127.0.0.1:4000/api/v1/streaming?stream=public
//   --post     e.g. https://mastodon.test/api/v1/statuses or http://127.0.0.1:3000/api/v1/statuses
//   --host     Host header (and TLS server name) for both requests, when the URLs use addresses
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
  else args[key] = process.argv[(i += 1)];
}
if (!args.ws || !args.post) {
  console.error('usage: ws-expect.js --ws URL --post URL [--queue Q] [--host NAME] [--insecure] [--timeout S] [--settle MS]');
  process.exit(2);
}

const token = `ws-expect-${crypto.randomBytes(6).toString('hex')}`;
const tls = args.insecure ? { rejectUnauthorized: false } : {};
const headers = args.host ? { Host: args.host } : {};
const servername = args.host ? { servername: args.host } : {};
const fail = (message) => { console.error(`FAIL: ${message}`); process.exit(1); };
setTimeout(() => fail(`no update carrying ${token} within ${args.timeout} s`), +args.timeout * 1000);

function post() {
  const body = JSON.stringify({ status: token, queue: args.queue });
  const url = new URL(args.post);
  const req = (url.protocol === 'https:' ? https : http).request(url, {
    method: 'POST', ...tls, ...servername,
    headers: { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
  }, (res) => {
    let data = '';
    res.on('data', (chunk) => { data += chunk; });
    res.on('end', () => {
      if (res.statusCode !== 200) fail(`POST ${args.post} answered ${res.statusCode}: ${data}`);
      console.error(`posted: ${data}`);
    });
  });
  req.on('error', (err) => fail(`POST ${args.post}: ${err.message}`));
  req.end(body);
}

const ws = new WebSocket(args.ws, { headers, ...tls, ...servername });
ws.on('open', () => setTimeout(post, +args.settle));
ws.on('error', (err) => fail(`WebSocket ${args.ws}: ${err.message}`));
ws.on('unexpected-response', (req, res) => fail(`WebSocket ${args.ws}: HTTP ${res.statusCode}`));
ws.on('message', (data) => {
  const event = JSON.parse(data);
  if (event.event !== 'update' || !String(event.payload).includes(token)) return;
  console.log(JSON.stringify(event));
  process.exit(0);
});
