"""A validating upstream for api-guard's Schemathesis run.

Every request that reaches it is judged again, by an independent validator (openapi-core),
against the same OpenAPI document api-guard enforces; one JSON line per request goes to the
report file: method, path, and openapi-core's verdict. It answers 200 with `{}`.

Usage: python3 upstream.py DOCUMENT.json REPORT.ndjson
Prints "listening PORT" once it listens on 127.0.0.1 (a port the system picks).
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus, urlsplit

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

doc_path, report_path = sys.argv[1], sys.argv[2]
with open(doc_path, encoding="utf-8") as f:
    document = json.load(f)
api = OpenAPI.from_dict(document)
report = open(report_path, "a", encoding="utf-8")


class Request:
    """The openapi-core request protocol, for one received request."""

    def __init__(self, method, target, headers, body):
        parts = urlsplit(target)
        self.host_url = "http://localhost"
        self.path = parts.path
        self.full_url_pattern = "http://localhost" + parts.path
        self.method = method.lower()
        query = []
        for pair in parts.query.split("&") if parts.query else []:
            name, _, value = pair.partition("=")
            query.append((unquote_plus(name), unquote_plus(value)))
        cookies = {}
        for c in headers.get("cookie", "").split(";"):
            if "=" in c:
                k, _, v = c.strip().partition("=")
                cookies[k] = v
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(list(headers.items())),
            cookie=ImmutableMultiDict(cookies),
        )
        self.content_type = headers.get("content-type", "")
        self.body = body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        verdict = {"method": self.command, "path": self.path}
        request = Request(self.command, self.path, headers, body)
        try:
            api.validate_request(request)
            verdict["valid"] = True
        except Exception as e:  # every way openapi-core says no
            verdict["valid"] = False
            verdict["why"] = f"{type(e).__name__}: {e}"[:300]
            # openapi-core refuses an empty query value (`?q=`) unless the parameter says
            # allowEmptyValue; api-guard judges "" by the schema, as Schemathesis's generator
            # does. Mark the verdicts whose error names a query parameter sent empty.
            empty = {n for n, v in request.parameters.query.items(multi=True) if v == ""}
            named = str(e).rsplit(": ", 1)[-1]
            if type(e).__name__ == "ParameterValidationError" and named in empty:
                verdict["empty_query_value"] = named
        report.write(json.dumps(verdict) + "\n")
        report.flush()
        out = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
