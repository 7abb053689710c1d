#!/usr/bin/env bash
# End to end against real S3 clients. First, moto_server (STS, S3 and IAM, with IAM
# authentication on, so every request's SigV4 signature and permissions are checked by
# botocore's own code), stsgate ($STSGATE_BIN) pointed at it, and boto3 uploading with the
# credentials stsgate hands out (tests/e2e/test_moto.py). Then stsgate on embedded defaults
# (no cloud configured: the embedded object store serves cloud type 2) with boto3 uploading
# to that store (tests/e2e/test_embedded.py).
#
# Usage: STSGATE_BIN=target/debug/stsgate tests/e2e/run.sh
# The pinned Python environment lives in .venv-e2e/ (git-ignored), rebuilt when
# requirements.txt changes. Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

: "${STSGATE_BIN:?set STSGATE_BIN to the stsgate binary, e.g. target/debug/stsgate}"
stsgate_bin=$(realpath "$STSGATE_BIN")
[ -x "$stsgate_bin" ] || { echo "STSGATE_BIN=$STSGATE_BIN is not an executable" >&2; exit 1; }

venv="$root/.venv-e2e"
req="$root/tests/e2e/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements.txt"; then
  echo "e2e: installing the pinned environment into .venv-e2e/"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements.txt"
fi
py="$venv/bin/python"

work=$(mktemp -d)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    echo "--- moto_server log (tail)"; tail -n 40 "$work/moto.log" 2>/dev/null || true
    echo "--- stsgate log (tail)"; tail -n 40 "$work/stsgate.log" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT PID NAME
  for _ in $(seq 1 100); do
    if "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "$3 exited before listening" >&2; return 1; }
    sleep 0.1
  done
  echo "$3 did not listen on 127.0.0.1:$1" >&2
  return 1
}

# moto: the first 3 actions are the test's unauthenticated bootstrap (an admin user, its key,
# its policy); every later request is authenticated and authorised (moto docs: "IAM-like
# Access Control"). AWS managed policies are not needed: the test writes its own.
moto_port=$(free_port)
moto_url="http://127.0.0.1:$moto_port"
INITIAL_NO_AUTH_ACTION_COUNT=3 MOTO_IAM_LOAD_MANAGED_POLICIES=false \
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$moto_port" "${pids[-1]}" moto_server
echo "e2e: moto_server $("$py" -c 'import moto; print(moto.__version__)') on $moto_url (IAM authentication on)"

"$py" tests/e2e/test_moto.py setup "$moto_url" "$work/stsgate-aws.env" "$work/setup.json"

# stsgate, configured by environment only, on SQLite in the scratch folder.
sg_port=$(free_port)
set -a
# shellcheck disable=SC1091
. "$work/stsgate-aws.env"
STSGATE_SERVER__LISTEN="127.0.0.1:$sg_port"
STSGATE_SERVER__PUBLIC_BASE_URL="http://127.0.0.1:$sg_port"
STSGATE_DATABASE__URL="sqlite://$work/stsgate.db?mode=rwc"
STSGATE_AUTH__HS256_SECRET="e2e-jwt-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
STSGATE_LOG="${STSGATE_LOG:-info}"
set +a
(cd "$work" && exec "$stsgate_bin" serve) >"$work/stsgate.log" 2>&1 &
pids+=($!)
wait_port "$sg_port" "${pids[-1]}" stsgate
"$stsgate_bin" healthcheck >/dev/null
echo "e2e: stsgate on http://127.0.0.1:$sg_port"

token=$("$stsgate_bin" token --sub e2e-alice --ttl 600)
E2E_MOTO_URL="$moto_url" E2E_STSGATE_URL="http://127.0.0.1:$sg_port" E2E_TOKEN="$token" \
  E2E_SETUP_JSON="$work/setup.json" TEST_SERVER_MODE=true TEST_SERVER_MODE_ENDPOINT="$moto_url" \
  "$py" -m pytest tests/e2e/test_moto.py -v -s -p no:cacheprovider

# stsgate on embedded defaults: no cloud, only what the first run of a newcomer has.
emb="$work/embedded"
mkdir -p "$emb"
emb_port=$(free_port)
store_port=$(free_port)
emb_env=(env -i "PATH=$PATH" "HOME=$HOME" "STSGATE_LOG=${STSGATE_LOG:-info}"
  "STSGATE_SERVER__LISTEN=127.0.0.1:$emb_port" "STSGATE_SERVER__PUBLIC_BASE_URL=http://127.0.0.1:$emb_port"
  "STSGATE_STORAGE__LISTEN=127.0.0.1:$store_port" "STSGATE_STORAGE__PUBLIC_URL=http://127.0.0.1:$store_port")
(cd "$emb" && exec "${emb_env[@]}" "$stsgate_bin" serve) >"$work/stsgate.log" 2>&1 &
pids+=($!)
wait_port "$emb_port" "${pids[-1]}" stsgate
wait_port "$store_port" "${pids[-1]}" "stsgate's embedded store"
echo "e2e: stsgate on embedded defaults, store on http://127.0.0.1:$store_port"
emb_token=$(cd "$emb" && "${emb_env[@]}" "$stsgate_bin" token --sub e2e-bob --ttl 600)
E2E_STSGATE_URL="http://127.0.0.1:$emb_port" E2E_TOKEN="$emb_token" E2E_STORE_DIR="$emb/stsgate-data" \
  "$py" -m pytest tests/e2e/test_embedded.py -v -s -p no:cacheprovider
