#!/usr/bin/env bash
# Install emoportrait with its test tools, then run the whole test suite (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
.venv/bin/python -m pytest -q "$@"
