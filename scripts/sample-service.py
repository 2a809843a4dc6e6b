#!/usr/bin/env python3
"""A small service for the deploy kind's tests and `make demo`: the thing being
deployed. It listens on 127.0.0.1:$PORT and answers

- GET /healthz  200 {"status": "UP", "version": ...}, or 503 with --unhealthy
- GET /         "hello from <version>"
- GET /metrics  Prometheus counters of the requests it served, by code

--error-rate R makes that share of GET / answer 500 (for metrics watches);
--start-delay S waits before listening (a slow start); with --start-counter
FILE, the Nth and later instances started against FILE are unhealthy when
--unhealthy-from N is given (a rollout that breaks half-way). SIGTERM stops it
after the requests in flight.
"""
import argparse
import fcntl
import os
import random
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"200": 0, "500": 0}
lock = threading.Lock()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default=os.environ.get("GANTRY_VERSION", "dev"))
    parser.add_argument("--unhealthy", action="store_true")
    parser.add_argument("--error-rate", type=float, default=float(os.environ.get("ERROR_RATE", "0")))
    parser.add_argument("--start-delay", type=float, default=0)
    parser.add_argument("--start-counter")
    parser.add_argument("--unhealthy-from", type=int)
    args = parser.parse_args()
    if args.start_counter and args.unhealthy_from:
        with open(args.start_counter, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            started = int(f.read() or "0") + 1
            f.seek(0)
            f.truncate()
            f.write(str(started))
        args.unhealthy = args.unhealthy or started >= args.unhealthy_from

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, status, body, kind="text/plain"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                if args.unhealthy:
                    self.answer(503, '{"status": "DOWN"}', "application/json")
                else:
                    self.answer(200, '{"status": "UP", "version": "%s"}' % args.version, "application/json")
            elif self.path == "/metrics":
                with lock:
                    text = "# TYPE http_requests_total counter\n" + "".join(
                        'http_requests_total{code="%s"} %d\n' % (code, n) for code, n in counts.items())
                self.answer(200, text, "text/plain; version=0.0.4")
            else:
                code = "500" if random.random() < args.error_rate else "200"
                with lock:
                    counts[code] += 1
                self.answer(int(code), "hello from %s\n" % args.version)

    time.sleep(args.start_delay)
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = False
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
