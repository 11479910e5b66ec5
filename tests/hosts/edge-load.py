#!/usr/bin/env python3
"""Steady requests through the edge, counted: the rolling-upgrade test's load (tests/verify/rolling-upgrade.yml).

Three loops, each RATE requests a second, each on a new TLS connection to the edge (verified with
the site's CA, SNI and Host the site's name): GET /health (Puma), POST /api/v1/statuses (a row and
a Sidekiq job) and GET /api/v1/streaming/health (streaming). None of these is cacheable, so every
request reaches a backend. On SIGTERM it writes OUT: per path the answers that were 200 and those
that were not (with the first failures), and the ids of the statuses the edge confirmed.
  edge-load.py EDGE_ADDRESS SITE_NAME CA_FILE OUT [RATE]"""
import http.client
import json
import signal
import socket
import ssl
import sys
import threading
import time

edge, name, cafile, out = sys.argv[1:5]
rate = float(sys.argv[5]) if len(sys.argv) > 5 else 4.0
context = ssl.create_default_context(cafile=cafile)
stop = threading.Event()
lock = threading.Lock()
counts = {}
failures = []
status_ids = []


class EdgeConnection(http.client.HTTPSConnection):
    """Connects to the edge's address, but speaks TLS (SNI) and HTTP (Host) as the site's name."""

    def connect(self):
        sock = socket.create_connection((edge, 443), self.timeout)
        self.sock = context.wrap_socket(sock, server_hostname=name)


def request(method, path, body=None):
    conn = EdgeConnection(name, 443, timeout=30)
    try:
        headers = {"Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def loop(method, path, body=None):
    key = "%s %s" % (method, path)
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        n += 1
        try:
            status, data = request(method, path, {**body, "status": "%s %d" % (body["status"], n)} if body else None)
            error = None if status == 200 else "HTTP %d: %s" % (status, data[:200].decode(errors="replace"))
        except (OSError, http.client.HTTPException) as exc:
            error, data = "%s: %s" % (type(exc).__name__, exc), b""
        with lock:
            result = counts.setdefault(key, {"ok": 0, "failed": 0})
            if error:
                result["failed"] += 1
                if len(failures) < 20:
                    failures.append({"request": key, "at": time.time(), "error": error})
            else:
                result["ok"] += 1
                if body:
                    status_ids.append(json.loads(data)["id"])
        stop.wait(max(0.0, 1.0 / rate - (time.monotonic() - started)))


def finish(*_):
    stop.set()


signal.signal(signal.SIGTERM, finish)
signal.signal(signal.SIGINT, finish)
threads = [threading.Thread(target=loop, args=args) for args in [
    ("GET", "/health"),
    ("POST", "/api/v1/statuses", {"status": "edge load"}),
    ("GET", "/api/v1/streaming/health"),
]]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with open(out, "w") as f:
    json.dump({"counts": counts, "failures": failures, "status_ids": status_ids}, f)
