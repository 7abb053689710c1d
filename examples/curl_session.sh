#!/usr/bin/env bash
# One upload with nothing but curl, against the fake AWS S3 (which checks every signature
# with its own code): issue credentials, `curl -T` the file to `uploadUrl` with
# `uploadHeaders`, post the callback, read the record (`verifiedBy: head`: stsgate asked the
# bucket). Builds and runs the fakes and stsgate from this checkout; needs curl and jq.
#   bash examples/curl_session.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin stsgate --example fake_clouds
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
target/debug/examples/fake_clouds --env-file "$work/fakes.env" > "$work/fakes.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/fakes.env" ] && break; sleep 0.1; done
set -a; . "$work/fakes.env"; set +a
export STSGATE_SERVER__LISTEN=127.0.0.1:18490 STSGATE_SERVER__PUBLIC_BASE_URL=http://127.0.0.1:18490
export STSGATE_DATABASE__URL="sqlite://$work/st.db?mode=rwc" STSGATE_LOG=warn NO_COLOR=1
(cd "$work" && exec "$OLDPWD/target/debug/stsgate") > "$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:18490/healthz >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN=$(cd "$work" && "$OLDPWD/target/debug/stsgate" token --sub alice --ttl 600)
B=http://127.0.0.1:18490
printf '\x89PNG\r\n\x1a\nhello from curl -T\n' > "$work/cat.png"

run() { echo "\$ $*" | sed -E 's/(Bearer )[^ "]+/\1$TOKEN/' >&2; "$@"; }
echo "## 1. issue"
run curl -sS -H "Authorization: Bearer $TOKEN" "$B/upload/sts/info?type=2&extension=png&isNeedCallback=1&uploadModule=resource_image" > "$work/sts.json"
jq '.data | {objectId, bucket, relativePath, uploadHeaders, uploadUrl: (.uploadUrl | sub("X-Amz-Security-Token=[^&]+"; "X-Amz-Security-Token=…") | sub("X-Amz-Signature=[^&]+"; "X-Amz-Signature=…"))}' "$work/sts.json"
ID=$(jq -r .data.objectId "$work/sts.json")
URL=$(jq -r .data.uploadUrl "$work/sts.json")
CT=$(jq -r '.data.uploadHeaders["Content-Type"]' "$work/sts.json")
KEY=$(jq -r .data.relativePath "$work/sts.json")
echo "## 2. curl -T to uploadUrl"
echo "\$ curl -sS -o /dev/null -w '%{http_code}' -T cat.png -H \"Content-Type: $CT\" \"\$uploadUrl\""
curl -sS -o /dev/null -w 'HTTP %{http_code}\n' -T "$work/cat.png" -H "Content-Type: $CT" "$URL"
echo "## 3. callback (the client claims 1 byte of text/plain; the record will hold the bucket's facts)"
run curl -sS -H "Authorization: Bearer $TOKEN" -d "objectId=$ID&resourceType=2&size=1&mimeType=text%2Fplain" "$B/upload/callback"
echo
echo "## 4. record"
run curl -sS -H "Authorization: Bearer $TOKEN" "$B/upload/objects/$ID" | jq '.data | {objectId, status, size, mimeType, etag, verifiedBy, relativePath}'
echo "(the file is $(wc -c < "$work/cat.png") bytes)"
