#!/usr/bin/env bash
# One command: install (first run only) and start hookagent on its embedded Valkey.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/hookagent up "$@"
