#!/usr/bin/env python3
"""Test harness: an Alertmanager webhook receiver. Each POST's JSON body is appended, one line per
notification, to the file given as the first argument; GET returns them all. Listens on 127.0.0.1:9099."""
import http.server
import json
import sys

LOG = sys.argv[1]


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(LOG, "a") as f:
            f.write(json.dumps(json.loads(body)) + "\n")
        self.send_response(200)
        self.end_headers()

    def do_GET(self):
        try:
            data = open(LOG, "rb").read()
        except FileNotFoundError:
            data = b""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        self.wfile.write(data)


http.server.ThreadingHTTPServer(("127.0.0.1", 9099), Receiver).serve_forever()
