#!/usr/bin/env bash
# Benchmarks with the real OS vault: `cargo bench` inside a throwaway Secret Service, then
# the Twilio requests one event poll makes with no history and with 100,000 older messages.
set -euo pipefail
cd "$(dirname "$0")/.."
keyring_home="$(mktemp -d)"
trap 'rm -rf "$keyring_home"' EXIT
export XDG_DATA_HOME="$keyring_home"
dbus-run-session -- sh -c '
  echo patchbay-bench | gnome-keyring-daemon --daemonize --unlock --components=secrets >/dev/null
  cargo bench -p patchbay-core --locked "$@" &&
  cargo test -p patchbay-core --locked --release --test events_test a_poll_costs_the_same -- --nocapture
' sh "$@"
