#!/usr/bin/env bash
# The LeRobot 0.4.4 virtualenv that serves GR00T N1.5 (`groot`) and X-VLA (`xvla`): both
# need transformers 4.57, which the app (transformers 5) cannot import beside its own, so the
# app serves them from here by itself (vlascope/remote/spawn.py). LeRobot's declared pins
# (torch<2.11, flash-attn for GR00T) would pull torch 2.10's CUDA build and an sdist that
# compiles with nvcc; neither is needed at inference, so LeRobot goes in without its pins
# and its runtime modules beside it (measured: docs/adapters.md). torchvision goes into a
# private folder, as for SmolVLA in the app (vlascope_lerobot/compat.py). vlascope and its
# LeRobot plugin are installed without dependencies for their metadata (the plugin's entry
# points); the spawner puts the checkout's code first on the path.
#   bash scripts/lerobot_env.sh           (or: bash scripts/setup.sh env lerobot)
#   bash scripts/lerobot_env.sh --built   only prints its python; exit status 1 when not built
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

# Every pin, and the plugin's entry points: a change here makes a new environment.
requirements="python3.11
lerobot==0.4.4 --no-deps
transformers==4.57.6
huggingface-hub==0.35.3
diffusers==0.35.2
peft==0.21.2
dm-tree==0.1.10
draccus==0.10.0
mergedeep==1.3.4
pyyaml-include==1.4.1
toml==0.10.2
typing-inspect==0.9.0
datasets==4.8.5
accelerate==1.16.0
imageio==2.38.2
pyserial==3.5
deepdiff==8.6.2
av==15.1.0
einops==0.8.2
num2words==0.5.14
safetensors==0.8.0
msgpack>=1.0.5,<2
websockets>=13,<18
torchvision==0.28.0 --no-deps (private)
vlascope --no-deps
$(cat "$repo/plugins/vlascope-lerobot/pyproject.toml")"

source "$repo/scripts/env_common.sh"
env_begin lerobot "$requirements" "$@"
"${pip[@]}" -c "$constraints" "transformers==4.57.6" "huggingface-hub==0.35.3" \
  "diffusers==0.35.2" "peft==0.21.2" "dm-tree==0.1.10" "draccus==0.10.0" "mergedeep==1.3.4" \
  "pyyaml-include==1.4.1" "toml==0.10.2" "typing-inspect==0.9.0" "datasets==4.8.5" \
  "accelerate==1.16.0" "imageio==2.38.2" "pyserial==3.5" "deepdiff==8.6.2" "av==15.1.0" \
  "einops==0.8.2" "num2words==0.5.14" "safetensors==0.8.0" "msgpack>=1.0.5,<2" \
  "websockets>=13,<18"
"${pip[@]}" --no-deps "lerobot==0.4.4"
if "$tmp/bin/python" -c 'import sys, torch; sys.exit(torch.version.cuda is None)'; then
  "${pip[@]}" --no-deps "torchvision==0.28.0"  # CUDA torch: PyPI's build matches it
else
  "${pip[@]}" --no-deps --target "$tmp/lerobot-torchvision" "torchvision==0.28.0"
fi
"${pip[@]}" --no-deps "$repo" "$repo/plugins/vlascope-lerobot"
# pip check may only miss what was skipped on purpose (the --no-deps installs).
env_check_pip '^(vlascope 0\.1\.0 requires|vlascope-lerobot 0\.1\.0 (requires|has requirement)|lerobot 0\.4\.4 (requires|has requirement))'
PYTHONPATH="$repo:$repo/plugins/vlascope-lerobot" "$tmp/bin/python" - <<'PY'
import sys
sys.prefix  # the private torchvision is found under it, as in the app
from vlascope_lerobot.compat import import_lerobot
import_lerobot("check", ["lerobot.policies.xvla.modeling_xvla",
                         "lerobot.policies.groot.modeling_groot"])
import vlascope.cli_serve  # noqa: F401
PY
env_finish
