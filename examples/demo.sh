#!/usr/bin/env bash
# `make run`: the demo upstream on 127.0.0.1:10001 and Envoy with api-guard on 127.0.0.1:10000,
# configured by envoy-config/envoy.yaml (policy: examples/policy.json). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY="${ENVOY_BIN:-.tools/envoy/envoy/_bin/envoy}"

target/release/examples/demo_upstream 127.0.0.1:10001 &
UP=$!
"$ENVOY" -c envoy-config/envoy.yaml --concurrency 1 --disable-hot-restart -l info --log-path /tmp/api-guard-demo-envoy.log &
ENV=$!
trap 'kill $UP $ENV 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 100); do
  curl -fs http://127.0.0.1:9901/ready >/dev/null 2>&1 && break
  kill -0 $ENV 2>/dev/null || { echo "Envoy exited; see /tmp/api-guard-demo-envoy.log"; exit 1; }
  sleep 0.1
done

cat <<'MSG'

api-guard demo: Envoy on http://127.0.0.1:10000 -> api-guard -> upstream on 127.0.0.1:10001
Envoy log: /tmp/api-guard-demo-envoy.log   stats: curl -s 127.0.0.1:9901/stats?filter=api_guard

Allowed (200, reaches the upstream):
  curl -i http://127.0.0.1:10000/api/users/42

Denied (400 problem+json: a credential in the query string; never reaches the upstream):
  curl -i 'http://127.0.0.1:10000/api/users/42?access_token=abc'

More denials:
  curl -i -X DELETE http://127.0.0.1:10000/api/users/42                              # 405 + Allow
  curl -i -X POST -H 'content-type: text/plain' -d hi http://127.0.0.1:10000/api/x     # 415
  head -c 5000 /dev/zero | curl -i -X PUT -H 'content-type: application/json' \
       --data-binary @- http://127.0.0.1:10000/api/users/42                            # 413

Press Ctrl-C to stop.
MSG
wait $ENV
