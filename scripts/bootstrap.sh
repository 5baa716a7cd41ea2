#!/usr/bin/env bash
# Creates ./.venv with archmon installed (with test tools when called with "test"),
# installing the Debian packages it needs first when they are missing and we may install them.
# Prints one line per step; a step's own output is shown only when it fails.
# Usage: scripts/bootstrap.sh [run|test]
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

say() { echo "bootstrap: $*" >&2; }

quietly() {
  # Runs a command with its output kept aside; shows it only if the command fails.
  local out code=0
  out="$(mktemp)"
  "$@" >"$out" 2>&1 || code=$?
  if [ "$code" -ne 0 ]; then
    cat "$out" >&2
    say "failed ($code): $*"
  fi
  rm -f "$out"
  return "$code"
}

apt_install() {
  # Installs the named Debian packages that are missing (as root, or through sudo).
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "please install ${missing[*]} (no apt-get here)"; return 1
  fi
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "installing Debian packages ${missing[*]} …"
  quietly "${sudo[@]}" apt-get update -qq
  quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "archmon needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))"; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PY" --version 2>&1)"
  # Debian's Python has venv without ensurepip until python3-venv is installed: that first attempt
  # fails with a long message we do not show; the package is installed and the attempt repeated.
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    apt_install python3-venv
    quietly "$PY" -m venv .venv
  fi
fi
# the printed report and register: WeasyPrint's Pango, and Noto CJK (CFF outlines) embedded for Chinese
apt_install libpango-1.0-0 libpangoft2-1.0-0 fontconfig fonts-noto-cjk
if [ "$mode" = test ]; then
  # pdftoppm/pdffonts render and inspect the PDFs in the report tests;
  # a real broker and pty pairs; headless Chromium with CJK fonts for the dashboard's browser tests;
  # InfluxDB 1.6 and VictoriaMetrics as the forward targets' real servers
  apt_install mosquitto socat chromium poppler-utils influxdb victoria-metrics
  extras=".[test]"
  what="archmon and test tools"
else
  extras="."
  what="archmon"
fi
stamp=".venv/.archmon-$mode-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing $what into .venv …"
  pip=(.venv/bin/python -m pip install -qq --disable-pip-version-check)
  quietly "${pip[@]}" --upgrade pip
  quietly "${pip[@]}" -e "$extras"
  touch "$stamp"
  say "done: .venv/bin/archmon"
fi
