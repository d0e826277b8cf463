#!/usr/bin/env bash
# Benchmarks with the real OS vault: `cargo bench` inside a throwaway Secret Service.
set -euo pipefail
cd "$(dirname "$0")/.."
keyring_home="$(mktemp -d)"
trap 'rm -rf "$keyring_home"' EXIT
export XDG_DATA_HOME="$keyring_home"
dbus-run-session -- sh -c '
  echo patchbay-bench | gnome-keyring-daemon --daemonize --unlock --components=secrets >/dev/null
  exec cargo bench -p patchbay-core --locked "$@"
' sh "$@"
