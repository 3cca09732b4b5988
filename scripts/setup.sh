#!/usr/bin/env bash
# Idempotent setup into .venv/ at the repo root.
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh libero   runtime + the LIBERO scene plugin (~1.3 GB with its assets)
#   bash scripts/setup.sh transformers   runtime + adapters for pi0 / VLM+head / OpenVLA-OFT
#   bash scripts/setup.sh lerobot  runtime + the SmolVLA adapter (LeRobot 0.4.4)
#   bash scripts/setup.sh metaworld   runtime + the MetaWorld scene plugin (MT1/MT10/MT50)
#   bash scripts/setup.sh ray      runtime + Ray, for sweeps on a cluster (docs/scale.md)
#   bash scripts/setup.sh rerun    runtime + the Rerun SDK, for `vlascope export-rerun`
#   bash scripts/setup.sh dev      runtime + test/lint tools + Ray + Rerun + every first-party
#                                  plugin (CI tests them all)
#   bash scripts/setup.sh env NAME a separate virtualenv for a policy family whose
#                                  dependencies conflict with the app's (known: openpi,
#                                  lerobot, openvla-oft);
#                                  prints its python. Policies that declare it are served
#                                  from there by themselves (docs/remote.md)
# Installs the Debian runtime libraries (EGL/Mesa for offscreen MuJoCo, fonts, Qt's X/xkb
# libraries) when run as root, and the CPU build of torch when there is no NVIDIA GPU, so a
# CPU machine never downloads gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

if [ "$extras" = env ]; then  # vlascope/core/environments.py knows the names and scripts
  [ $# -eq 2 ] || { echo "setup: usage: bash scripts/setup.sh env NAME" >&2; exit 2; }
  python_bin=$(command -v python3.11 || command -v python3) ||
    { echo "setup: Python 3 is required" >&2; exit 1; }
  PYTHONPATH="$PWD" exec "$python_bin" -m vlascope.core.environments build "$2"
fi

apt_packages=(libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 libgles2 libglib2.0-0
              libfontconfig1 libxkbcommon0 libdbus-1-3 fonts-dejavu-core
              # Qt's xcb platform, for the window on a desktop
              libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
              libxcb-render-util0 libxcb-image0 libxcb-randr0 libxcb-xinerama0)
# the desktop's own tools, which the tests of `vlascope install-desktop` check it with
if [ "$extras" = dev ]; then
  apt_packages+=(desktop-file-utils shared-mime-info libglib2.0-bin
                 # a virtual X display with GL (Mesa): benchmarks/atlas.py's vispy comparison
                 xvfb libglx-mesa0)
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

python_bin=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    python_bin="$cand"; break
  fi
done
[ -n "$python_bin" ] || { echo "setup: Python 3.11 is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)

bash scripts/install_torch.sh .venv/bin/python

if [ "$extras" = dev ]; then
  "${pip[@]}" -e ".[dev,ray,rerun]"
elif [ "$extras" = ray ] || [ "$extras" = rerun ]; then
  "${pip[@]}" -e ".[$extras]"
else
  "${pip[@]}" -e .
fi

if [ "$extras" = dev ] || [ "$extras" = libero ]; then
  if ! .venv/bin/python -c 'import vlascope_libero, libero.libero' 2>/dev/null; then
    echo "setup: installing the LIBERO scene plugin (plugins/vlascope-libero)"
    "${pip[@]}" -e plugins/vlascope-libero
  fi
  # robosuite and LIBERO ask for opencv-python, which bundles Qt 5 and points Qt at its
  # plugins: keep only the headless build of the same OpenCV (docs/architecture.md).
  if .venv/bin/python -m pip show opencv-python >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -y -q opencv-python
    "${pip[@]}" --force-reinstall --no-deps "opencv-python-headless>=4.8,<5"
  fi
fi
if [ "$extras" = dev ] || [ "$extras" = transformers ]; then
  .venv/bin/python -c 'import vlascope_transformers' 2>/dev/null ||
    "${pip[@]}" -e plugins/vlascope-transformers
fi
if [ "$extras" = dev ] || [ "$extras" = lerobot ]; then
  if ! .venv/bin/python -c 'import vlascope_lerobot, lerobot' 2>/dev/null; then
    echo "setup: installing LeRobot 0.4.4 for the SmolVLA adapter (plugins/vlascope-lerobot)"
    # LeRobot 0.4.4 pins torch<2.11 and transformers<5: honouring them would swap the CPU
    # torch for gigabytes of CUDA wheels and break the app's transformers. Install it
    # without its pins, then only the modules SmolVLA imports, with everything already
    # installed frozen as a constraint so nothing moves (measured: docs/adapters.md).
    pins=$(mktemp)
    .venv/bin/python -m pip freeze --exclude-editable | grep -v ' @ ' > "$pins"
    .venv/bin/python -c 'import torch; print("torch==" + torch.__version__)' >> "$pins"
    "${pip[@]}" --no-deps "lerobot==0.4.4"
    "${pip[@]}" -c "$pins" -r plugins/vlascope-lerobot/requirements-lerobot.txt
    rm -f "$pins"
    # LeRobot imports torchvision.transforms; PyPI's torchvision is a CUDA build that fails
    # to import next to CPU torch, and an importable-looking torchvision makes transformers
    # pick its torchvision image processors and fail too. So it goes into a folder of its
    # own that only the SmolVLA adapter puts on the path (vlascope_lerobot/compat.py).
    if .venv/bin/python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
      "${pip[@]}" --no-deps "torchvision==0.28.0"  # CUDA torch: PyPI's build matches it
    else
      "${pip[@]}" --no-deps --target .venv/lerobot-torchvision "torchvision==0.28.0"
    fi
    "${pip[@]}" --no-deps -e plugins/vlascope-lerobot
  fi
fi
if [ "$extras" = dev ] || [ "$extras" = metaworld ]; then
  if ! .venv/bin/python -c 'import vlascope_metaworld, metaworld' 2>/dev/null; then
    echo "setup: installing MetaWorld 3.1.1 (plugins/vlascope-metaworld)"
    # metaworld 3.1.1 pins mujoco==3.3.0, which would downgrade the app's mujoco 3.3.7 that
    # LIBERO runs on; it runs on 3.3.7 (measured), so install it without its pins and its
    # dependencies constrained to what is installed (docs/architecture.md).
    pins=$(mktemp)
    .venv/bin/python -m pip freeze --exclude-editable | grep -v ' @ ' > "$pins"
    "${pip[@]}" --no-deps "metaworld==3.1.1"
    "${pip[@]}" -c "$pins" "gymnasium>=1.0" scipy imageio packaging
    rm -f "$pins"
    "${pip[@]}" --no-deps -e plugins/vlascope-metaworld
  fi
fi
# A plugin installed (editable) before it declared a new entry point keeps the old list, so
# discovery would miss the new policy: register its entry points again (nothing else moves).
for plugin in plugins/vlascope-*; do
  state=0
  .venv/bin/python scripts/entry_points_current.py "$plugin" || state=$?
  if [ "$state" = 1 ]; then
    echo "setup: registering the entry points of $plugin again"
    "${pip[@]}" --no-deps -e "$plugin"
  fi
done
echo "setup: ready (.venv/bin/vlascope)"
