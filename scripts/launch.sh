#!/usr/bin/env bash
# Set up (idempotent) and launch VLAScope on the built-in tabletop scene.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vlascope "$@"
