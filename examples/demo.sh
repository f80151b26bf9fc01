#!/usr/bin/env bash
# `make run`: the demo upstream on 127.0.0.1:10001 and Envoy with api-guard on 127.0.0.1:10000,
# configured by envoy-config/envoy.yaml (policy: examples/policy.json). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY="${ENVOY_BIN:-.tools/envoy/envoy/_bin/envoy}"

# POLICY=file.json serves that policy instead of examples/policy.json, in the same bootstrap.
BOOTSTRAP=envoy-config/envoy.yaml
if [ -n "${POLICY:-}" ]; then
  BOOTSTRAP=$(mktemp /tmp/api-guard-demo-XXXXXX.yaml)
  # The policy checked for Envoy and put in a bootstrap like envoy-config/envoy.yaml.
  target/release/api-guard render envoy "$POLICY" > "$BOOTSTRAP" || { cat "$BOOTSTRAP"; exit 1; }
  echo "serving $POLICY (bootstrap: $BOOTSTRAP)"
fi

python3 examples/demo_upstream.py 127.0.0.1:10001 &
UP=$!
"$ENVOY" -c "$BOOTSTRAP" --concurrency 1 --disable-hot-restart -l info --log-path /tmp/api-guard-demo-envoy.log &
ENV=$!
trap 'kill $UP $ENV 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 100); do
  curl -fs http://127.0.0.1:9901/ready >/dev/null 2>&1 && break
  kill -0 $ENV 2>/dev/null || { echo "Envoy exited; see /tmp/api-guard-demo-envoy.log"; grep -m3 "api-guard" /tmp/api-guard-demo-envoy.log; exit 1; }
  sleep 0.1
done

# A demo access token (sub user-42, scope orders:read orders:write), signed by the test key
# whose public half is in the demo policy. Never use these keys outside a demo.
TOKEN=$(python3 -c 'import json;print(json.load(open("tests/fixtures/jwt/tokens.json"))["rs256"])')

if [ -n "${POLICY:-}" ]; then
  echo "api-guard: Envoy on http://127.0.0.1:10000 with $POLICY -> upstream on 127.0.0.1:10001 (log: /tmp/api-guard-demo-envoy.log)"
  echo "A demo token (for a provider trusting tests/fixtures/jwt/jwks.json): export TOKEN=$TOKEN"
else
cat <<MSG

api-guard demo: Envoy on http://127.0.0.1:10000 -> api-guard -> upstream on 127.0.0.1:10001
Envoy log: /tmp/api-guard-demo-envoy.log   stats: curl -s 127.0.0.1:9901/stats?filter=api_guard
A demo token:  export TOKEN=$TOKEN

Allowed (200, reaches the upstream, which sees x-user: user-42 and no token):
  curl -i -H "authorization: Bearer \$TOKEN" http://127.0.0.1:10000/api/users/user-42

Denied (401 problem+json with WWW-Authenticate; never reaches the upstream):
  curl -i http://127.0.0.1:10000/api/users/user-42

More denials:
  curl -i -H "authorization: Bearer \$TOKEN" http://127.0.0.1:10000/api/users/user-43       # 403: not your user
  curl -i 'http://127.0.0.1:10000/api/health?access_token=abc'                              # 400: credential in query
  curl -i -X DELETE -H "authorization: Bearer \$TOKEN" http://127.0.0.1:10000/api/users/user-42  # 405 + Allow
  curl -i http://127.0.0.1:10000/api/other                                                  # 404: not in the API description

Request validation (examples/api/openapi.json):
  curl -i -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       --data @examples/api/order.json http://127.0.0.1:10000/api/orders                         # 200: a valid order
  curl -i -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       --data '{"customer":"x","items":[],"is_admin":true}' http://127.0.0.1:10000/api/orders  # 400: errors with pointers
  curl -i -H "authorization: Bearer \$TOKEN" 'http://127.0.0.1:10000/api/orders?limit=0'      # 400: /query/limit
  curl -i http://127.0.0.1:10000/api/health                                                 # 200: public

Response protection (the demo upstream echoes the body given in x-test-echo-body):
  curl -s -H "authorization: Bearer \$TOKEN" -H 'x-test-echo: 1' \
       -H 'x-test-echo-body: {"id":"user-42","email":"ada@example.com","password":"hunter2","is_admin":true}' \
       http://127.0.0.1:10000/api/users/user-42        # {"id":"user-42","email":"ada@example.com"}: undocumented and writeOnly members dropped

Press Ctrl-C to stop.
MSG
fi
wait $ENV
