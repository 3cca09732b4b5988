#!/usr/bin/env bash
# The OpenVLA-OFT virtualenv: openvla-oft's own stack as far as it installs from PyPI
# (transformers 4.40.1, tokenizers 0.19.1, timm 0.9.10, peft 0.11.1, draccus 0.8.0,
# tensorflow 2.15 and its datasets, which its utilities import) beside the machine's torch,
# with numpy < 2 for tensorflow 2.15. Three parts of its install are on GitHub only and are
# not installed here: openvla-oft's own code, its transformers fork (bidirectional
# attention: stock 4.40.1 loads its checkpoints but gives wrong actions) and dlimp. Once the
# user installs them into this environment (the command is printed at the end, and by the
# adapter when they are missing), the `openvla-oft` adapter is served from here
# (docs/adapters.md). torch stays the machine's 2.13 (openvla-oft pins 2.2.0: a CUDA build
# of 2.2 would be gigabytes; its code runs on 2.13). vlascope and vlascope-transformers are
# installed without dependencies for their metadata; the spawner puts the checkout first.
#   bash scripts/openvla_oft_env.sh           (or: bash scripts/setup.sh env openvla-oft)
#   bash scripts/openvla_oft_env.sh --built   only prints its python; status 1 when not built
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

# Every pin, and the plugin's entry points: a change here makes a new environment.
requirements="python3.11
numpy<2
transformers==4.40.1
tokenizers==0.19.1
peft==0.11.1
draccus==0.8.0
sentencepiece==0.1.99
tensorflow==2.15.0
tensorflow_datasets==4.9.3
tensorflow_graphics==2021.12.3
timm==0.9.10 torchvision==0.28.0 --no-deps
accelerate>=0.25.0
einops huggingface_hub json-numpy jsonlines matplotlib protobuf rich diffusers imageio
msgpack>=1.0.5,<2
websockets>=13,<18
vlascope --no-deps
$(cat "$repo/plugins/vlascope-transformers/pyproject.toml")"

source "$repo/scripts/env_common.sh"
ENV_NUMPY="numpy<2" env_begin openvla-oft "$requirements" "$@"
"${pip[@]}" -c "$constraints" "transformers==4.40.1" "tokenizers==0.19.1" "peft==0.11.1" \
  "draccus==0.8.0" "sentencepiece==0.1.99" "tensorflow==2.15.0" "tensorflow_datasets==4.9.3" \
  "tensorflow_graphics==2021.12.3" "accelerate>=0.25.0" einops huggingface_hub json-numpy \
  jsonlines matplotlib protobuf rich diffusers imageio "msgpack>=1.0.5,<2" "websockets>=13,<18"
# timm's layers import torchvision: PyPI's build (a CUDA one) imports beside CPU torch once
# two operator schemas are defined (vlascope/adapters/torchvision_ops.py, the adapter does).
"${pip[@]}" --no-deps "timm==0.9.10" "torchvision==0.28.0"
"${pip[@]}" --no-deps "$repo" "$repo/plugins/vlascope-transformers"
env_check_pip '^(vlascope 0\.1\.0 requires|vlascope-transformers 0\.1\.0 (requires|has requirement))'
PYTHONPATH="$repo:$repo/plugins/vlascope-transformers" "$tmp/bin/python" - <<'PY'
from vlascope.adapters.torchvision_ops import prepare_torchvision
prepare_torchvision()
import numpy, tensorflow, timm, transformers  # noqa: F401
assert numpy.__version__ < "2" and transformers.__version__ == "4.40.1"
import vlascope.cli_serve, vlascope_transformers.openvla_oft  # noqa: F401
PY
env_finish
python="$env/bin/python"
env_log "OpenVLA-OFT's GitHub-only parts, to install into it yourself:"
env_log "  git clone https://github.com/moojink/openvla-oft && $python -m pip install --no-deps -e openvla-oft"
env_log "  $python -m pip install --no-deps 'transformers @ git+https://github.com/moojink/transformers-openvla-oft.git' 'dlimp @ git+https://github.com/moojink/dlimp_openvla'"
