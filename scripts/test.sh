#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, slow end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# openpi's own server and client for tests/test_openpi_interop.py: a virtualenv of their
# own (numpy < 2), built once per machine and reused (about 50 s the first time).
bash scripts/openpi_env.sh >/dev/null
# LeRobot 0.4.4 with transformers 4.57, serving GR00T N1.5 and X-VLA to the adapter tests
# (about 80 s the first time).
bash scripts/lerobot_env.sh >/dev/null
# OpenVLA-OFT's PyPI stack (transformers 4.40, tensorflow 2.15): the adapter's served path up
# to its GitHub-only parts (about 2 min and 3.1 GB the first time).
bash scripts/openvla_oft_env.sh >/dev/null
export QT_QPA_PLATFORM=offscreen MUJOCO_GL=egl
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
