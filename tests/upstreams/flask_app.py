"""A real Flask (Werkzeug) application with the routes of the path-confusion corpus.

It answers which route served each request, with the path as Werkzeug decoded it and the
request target as it arrived, and prints its port on the first line of stdout.
"""

import logging

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

app = Flask(__name__)
seen = []


def answer(served):
    return jsonify(served=served, path=request.path, raw=request.environ.get("RAW_URI", ""))


@app.route("/admin", defaults={"rest": ""}, methods=["GET", "POST", "DELETE"])
@app.route("/admin/<path:rest>", methods=["GET", "POST", "DELETE"])
def admin(rest):
    return answer("admin")


@app.route("/public", defaults={"rest": ""})
@app.route("/public/<path:rest>")
def public(rest):
    return answer("public")


@app.route("/__seen")
def log():
    return jsonify(seen)


@app.before_request
def record():
    if request.path != "/__seen":
        seen.append(request.environ.get("RAW_URI", ""))


@app.errorhandler(404)
def none(_):
    return answer("none"), 404


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()
