#!/usr/bin/env bash
# Installs what the tests need (Debian: mosquitto, socat; Python: ./.venv with test extras),
# then runs ruff and the whole test suite. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
