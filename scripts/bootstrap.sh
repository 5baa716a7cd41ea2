#!/usr/bin/env bash
# Creates ./.venv with archmon installed (with test tools when called with "test"),
# installing the Debian packages it needs first when they are missing and we may install them.
# Usage: scripts/bootstrap.sh [run|test]
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

apt_install() {
  # Installs the named Debian packages that are missing (as root, or through sudo).
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: please install ${missing[*]} (no apt-get here)" >&2; return 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: archmon needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PY" -m venv .venv
  fi
fi
if [ "$mode" = test ]; then
  apt_install mosquitto socat
  extras=".[test]"
else
  extras="."
fi
stamp=".venv/.archmon-$mode-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -e "$extras"
  touch "$stamp"
fi
