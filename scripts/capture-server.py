#!/usr/bin/env python3
"""A small HTTP server for `make demo`: it stands in for Slack, a webhook
receiver and a service under smoke test, on loopback.

- GET /healthz answers {"status": "UP"} (what the smoke test checks).
- Every POST is answered 200 and appended to --out as one JSON line (path,
  headers that matter, body).
- A POST carrying X-Gantry-Signature is verified the way a receiver should
  (docs/step-kinds.md): HMAC-SHA256 with the shared secret ($HOOK_SECRET) over
  "timestamp.body", compared in constant time, and refused (401) when the
  timestamp is more than five minutes from now — so a captured delivery cannot
  be replayed.

Usage: capture-server.py --port 0 --out FILE   (prints the port it listens on)
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def verify(secret: bytes, timestamp: str, delivery: str, body: bytes, signature: str) -> bool:
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - sent) > TOLERANCE_SECONDS:
        return False
    signed = delivery.encode() + b"." + timestamp.encode() + b"." + body
    expected = "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class Handler(BaseHTTPRequestHandler):
    out = None
    secret = b""

    def log_message(self, *args):  # quiet: the demo prints what it captured
        pass

    def do_GET(self):
        if self.path == "/healthz":
            self.answer(200, b'{"status":"UP"}')
        else:
            self.answer(404, b'{"error":"not found"}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        record = {"path": self.path, "body": body.decode("utf-8", "replace")}
        signature = self.headers.get("X-Gantry-Signature")
        if signature is not None:
            valid = verify(self.secret, self.headers.get("X-Gantry-Timestamp", ""), self.headers.get("X-Gantry-Delivery", ""), body, signature)
            record["signature"] = "valid" if valid else "INVALID"
            if not valid:
                self.write(record)
                self.answer(401, b'{"error":"bad signature"}')
                return
        self.write(record)
        self.answer(200, b"ok")

    def write(self, record):
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    Handler.out = args.out
    Handler.secret = os.environ.get("HOOK_SECRET", "").encode()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
