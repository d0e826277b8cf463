#!/usr/bin/env bash
# Start-up and idle memory of the release window against an empty Tauri 2 window
# (../shared/perf/empty-tauri), launched alternately in one run, with an empty data folder
# and with the 10,000-folder / 100,000-connection fixture. A measurement, not a test.
#   apt-get install xdotool imagemagick   (besides tests/setup.sh's packages)
#   bash tests/perf/compare-start.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-5}"
empty_source="${EMPTY_TAURI:-../shared/perf/empty-tauri}"
empty_target="${EMPTY_TAURI_TARGET:-/tmp/empty-tauri-target}"
for tool in xvfb-run xdotool import dbus-run-session gnome-keyring-daemon; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install xdotool imagemagick)" >&2; exit 2; }
done

npm --prefix ui run --silent build
cargo build --quiet --release -p patchbay-desktop --features custom-protocol
cargo build --quiet --release -p patchbay-core --example seed
# The empty window builds from a copy: its icon script writes beside itself.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$empty_source" "$work/empty-tauri"
(cd "$work/empty-tauri" && python3 make_icon.py && CARGO_TARGET_DIR="$empty_target" cargo build --quiet --release)

seeded="$work/seeded"
target/release/examples/seed "$seeded" 10000 100000
export XDG_DATA_HOME="$work/keyring"
xvfb-run -a -s "-screen 0 1280x800x24 -noreset" dbus-run-session -- sh -c '
  echo perf | gnome-keyring-daemon --daemonize --unlock --components=secrets >/dev/null
  exec python3 "$@"' sh tests/perf/start.py target/release/patchbay-desktop \
  "$empty_target/release/empty-tauri" "$runs" "" "$seeded"
