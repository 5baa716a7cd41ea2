#!/usr/bin/env bash
# Installs archmon into ./.venv and runs the demo on built-in simulators. Arguments go to `archmon demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh run
exec .venv/bin/archmon demo "$@"
