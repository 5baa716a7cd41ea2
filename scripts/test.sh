#!/usr/bin/env bash
# Installs what the tests need (Debian: mosquitto, socat; Python: ./.venv with test extras),
# then runs ruff and the whole test suite. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
.venv/bin/ruff check .
# Two workers, each taking whole files (module fixtures are built once); ARCHMON_TEST_WORKERS=0 runs in one
# process. Arguments after these win (e.g. -n 0).
exec .venv/bin/python -m pytest -n "${ARCHMON_TEST_WORKERS:-2}" --dist loadfile "$@"
