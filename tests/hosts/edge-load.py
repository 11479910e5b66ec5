#!/usr/bin/env python3
"""Steady requests through the edge, counted: the rolling-upgrade test's load (tests/verify/rolling-upgrade.yml).

Three loops, each RATE requests a second, each on a new TLS connection to the edge (verified with
the site's CA, SNI and Host the site's name): GET /health (Puma), POST /api/v1/statuses (a row and
a Sidekiq job) and GET /api/v1/streaming/health (streaming). None of these is cacheable, so every
request reaches a backend. On SIGTERM it writes OUT: per path the answers that were 200 and those
that were not (with the first failures), the ids of the statuses the edge confirmed (and when:
confirmed_at, in the same order), each outage (a run of failures, from the first failed request's
start to the next answered one's end) and write_stall, the longest time between two confirmed
statuses.
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
confirmed_at = []
outages = []


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
    down_since = None
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
                down_since = down_since or time.time() - (time.monotonic() - started)
                result["failed"] += 1
                if len(failures) < 20:
                    failures.append({"request": key, "at": time.time(), "error": error})
            else:
                if down_since:
                    outages.append({"request": key, "from": down_since, "to": time.time(),
                                    "seconds": round(time.time() - down_since, 1)})
                    down_since = None
                result["ok"] += 1
                if body:
                    status_ids.append(json.loads(data)["id"])
                    confirmed_at.append(time.time())
        stop.wait(max(0.0, 1.0 / rate - (time.monotonic() - started)))
    if down_since:
        with lock:
            outages.append({"request": key, "from": down_since, "to": None, "seconds": None})


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
# The longest time without a confirmed status: a database switchover stalls writes (PgBouncer
# holds the queries) rather than failing them.
gaps = [{"from": a, "to": b, "seconds": round(b - a, 1)} for a, b in zip(confirmed_at, confirmed_at[1:])]
write_stall = max(gaps, key=lambda gap: gap["seconds"], default=None)
with open(out, "w") as f:
    json.dump({"counts": counts, "failures": failures, "status_ids": status_ids, "confirmed_at": confirmed_at,
               "outages": outages, "write_stall": write_stall}, f)
