"""The demo's upstream for `make run` (Python's standard library only, nothing to build).

Answers every request 200 with a small JSON body and prints each request that reaches it and
what it answered, so you can see which requests api-guard let through and what api-guard did
to the answer on the way back. `x-test-echo: 1` answers with the request body instead (or with
`x-test-echo-body`, for requests without one).
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("x-test-echo"):
            answer = body or self.headers.get("x-test-echo-body", "").encode()
        else:
            answer = json.dumps({"ok": True}).encode()
        user = self.headers.get("x-user")
        print(
            f"upstream received: {self.command} {self.path} ({len(body)} body bytes"
            f"{', x-user: ' + user if user else ''}"
            f"{', with a token' if self.headers.get('authorization') else ''})"
            f" -> sent {answer.decode(errors='replace')}",
            flush=True,
        )
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_one

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:10001").rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    print(f"demo upstream listening on {host}:{port}", flush=True)
    server.serve_forever()
