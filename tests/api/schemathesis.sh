#!/usr/bin/env bash
# Runs schemathesis, with every check, against a real `patchbay serve` (fake Twilio,
# the Secret Service of the caller's session) and docs/openapi.yaml: the document must
# describe what the server really accepts and answers. Run inside tests/run.sh's D-Bus
# session, after the binaries are built. EXAMPLES sets the examples per operation.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}/debug"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The fake Twilio announces its base URLs on its first line.
coproc FAKE { exec "$target/fake-services"; }
pids+=("$FAKE_PID")
read -r announced <&"${FAKE[0]}"
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval("d"+sys.argv[2]))' "$announced" "$1"; }
export PATCHBAY_DATA_DIR="$work/data"
export PATCHBAY_TWILIO_API_BASE="$(field '["api_base"]')"
export PATCHBAY_TWILIO_ACCOUNTS_BASE="$(field '["accounts_base"]')"
# Fuzzed requests name every element: each service's fake answers them, never the real one.
export PATCHBAY_SLACK_API_BASE="$(field '["slack"]["api_base"]')"
export PATCHBAY_SENDGRID_API_BASE="$(field '["sendgrid"]["api_base"]')"
export PATCHBAY_SENDGRID_EU_API_BASE="$(field '["sendgrid"]["eu_api_base"]')"
export PATCHBAY_HTTP_LOOPBACK_ONLY=1
# Fuzzed stores and http instances may reach the fakes on this machine, and nothing else.
export PATCHBAY_SERVE_ALLOW_DESTINATIONS=loopback
export PATCHBAY_VAULT_SERVICE="patchbay-schemathesis-$$"
export PATCHBAY_TWILIO_RETRY_BACKOFF_MS=5

credentials="$("$target/patchbay" --json api credentials)"
user="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["user"])' "$credentials")"
organization="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["organization"])' "$credentials")"

# serve writes its address on its first line (bash has one coproc only: the fake's).
"$target/patchbay" --json serve --listen 127.0.0.1:0 >"$work/serve.out" &
pids+=("$!")
for _ in $(seq 100); do [ -s "$work/serve.out" ] && break; sleep 0.1; done
read -r listening <"$work/serve.out"
address="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["listening"])' "$listening")"

# One real instance for the operations on /instances/{id}.
instance="$(python3 - "$announced" <<'PY'
import json, sys
seed = json.loads(sys.argv[1])["seed"]["live"]
print(json.dumps({"element": {"key": "twiliov2"}, "name": "Schemathesis", "configuration": {
    "username": seed["sid"], "password": seed["auth_token"], "phone_number": seed["phone_numbers"][0]}}))
PY
)"
export PATCHBAY_INSTANCE_ID="$(python3 - "http://$address/instances" "User $user, Organization $organization" "$instance" <<'PY'
import json, sys, urllib.request
url, auth, body = sys.argv[1:]
request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json", "Authorization": auth})
print(json.load(urllib.request.urlopen(request))["id"])
PY
)"

# The `st` script pip installed beside this python3 (a version manager's shims may not
# know of it yet on a fresh machine).
st="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/st"
"$st" --config-file tests/api/schemathesis.toml run docs/openapi.yaml \
  --url "http://$address" \
  --header "Authorization: User $user, Organization $organization" \
  --checks all \
  --max-examples "${EXAMPLES:-25}" \
  --seed 1 \
  --generation-deterministic \
  --request-timeout 20
