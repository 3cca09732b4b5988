#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, slow end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export QT_QPA_PLATFORM=offscreen MUJOCO_GL=egl
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
