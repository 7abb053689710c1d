#!/usr/bin/env bash
# Fuzzes the running server against its own /openapi.yaml with schemathesis.
# Starts the fake clouds and stsgate (every provider enabled against its fake, SQLite in a
# temp dir), mints a token with `stsgate token`, runs schemathesis with a fixed seed and a
# bounded number of examples, and fails on any failed check.
# Needs: STSGATE_BIN (the stsgate binary), FAKES_BIN (the fake-clouds example), SCHEMATHESIS.
set -euo pipefail
: "${STSGATE_BIN:?}" "${FAKES_BIN:?}" "${SCHEMATHESIS:?}"
STSGATE_BIN=$(realpath "$STSGATE_BIN"); FAKES_BIN=$(realpath "$FAKES_BIN"); SCHEMATHESIS=$(realpath "$SCHEMATHESIS")
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { for _ in $(seq 1 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1"; return 1; }

FAKES_ENV="$work/fakes.env"
"$FAKES_BIN" --env-file "$FAKES_ENV" > fakes.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$FAKES_ENV" ] && break; sleep 0.1; done
[ -s "$FAKES_ENV" ] || { cat fakes.log; exit 1; }
set -a; . "$FAKES_ENV"; set +a

PORT=18480
export STSGATE_SERVER__LISTEN=127.0.0.1:$PORT
export STSGATE_SERVER__PUBLIC_BASE_URL=http://127.0.0.1:$PORT
export STSGATE_DATABASE__URL="sqlite://$work/st.db?mode=rwc"
export STSGATE_LOG=warn,stsgate=info
export NO_COLOR=1
"$STSGATE_BIN" > server.log 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$PORT/healthz" || { cat server.log; exit 1; }
TOKEN=$("$STSGATE_BIN" token --sub schemathesis --service --ttl 3600)

set +e
"$SCHEMATHESIS" run "http://127.0.0.1:$PORT/openapi.yaml" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --seed 20261130 --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" \
  --header "Authorization: Bearer $TOKEN" 2>&1 | tee schemathesis.log | tail -25
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  echo "--- server log (tail)"; tail -50 server.log
  exit "$rc"
fi
grep -E "generated, .* passed" schemathesis.log
providers=$(grep -o 'stsgate serving.*' server.log | grep -o 'providers=.*' || true)
echo "server: $providers"
echo "credentials issued during the run, by cloud:"
grep -o 'cloud="\?[a-z]*' server.log | sed 's/cloud="\?//' | sort | uniq -c || true
