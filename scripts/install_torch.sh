#!/usr/bin/env bash
# Install torch into the virtualenv of PYTHON unless it has one: the CUDA build where an
# NVIDIA GPU is present, else the CPU build (the file on this disk when there is one), so a
# CPU machine never downloads gigabytes of CUDA wheels. Shared by setup.sh and the tests
# that build fresh virtualenvs (tests/test_wheel.py).
#   bash scripts/install_torch.sh PYTHON
set -euo pipefail
python_bin="$1"
pip=("$python_bin" -m pip install --disable-pip-version-check -q)
"$python_bin" -c 'import torch' 2>/dev/null && exit 0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found, installing torch with CUDA" >&2
  "${pip[@]}" "torch==2.13.0"
else
  local_wheel=$(ls /opt/wheels/torch-2.13.0+cpu-cp311-*.whl 2>/dev/null | head -n1 || true)
  if [ -n "$local_wheel" ]; then
    echo "setup: no GPU, installing CPU torch from $local_wheel" >&2
    "${pip[@]}" "$local_wheel"
  else
    echo "setup: no GPU, installing CPU torch" >&2
    "${pip[@]}" "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
      --extra-index-url https://pypi.org/simple
  fi
fi
