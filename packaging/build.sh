#!/usr/bin/env bash
# One-folder bundle of VLAScope with PyInstaller: dist/VLAScope/ (run dist/VLAScope/vlascope)
# and dist/VLAScope-<version>-linux-x86_64.tar.gz of it. The bundle is built in its own
# virtualenv outside the checkout, holding only VLAScope's wheel (packaging/build_wheels.sh),
# CPU torch (scripts/install_torch.sh) and the pinned PyInstaller, so it carries exactly what
# the wheel needs. See docs/packaging.md.
#   bash packaging/build.sh
#   VLASCOPE_BUNDLE_VENV=/path PYTHON=python3.11 bash packaging/build.sh
# It replaces only what it made itself (dist/VLAScope with its marker file, its tarball,
# build/bundle); anything else in those places makes it stop.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VLASCOPE_BUNDLE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vlascope-bundle-venv}"
python_bin="${PYTHON:-python3.11}"
dist="$repo/dist"
work="$repo/build/bundle"
marker=".vlascope-bundle"  # written into dist/VLAScope and the venv: what this script made
# Pinned: a bundle is reproducible only with the same freezer and the same hooks.
pyinstaller_pins=("pyinstaller==6.22.3" "pyinstaller-hooks-contrib==2026.10")
start=$(date +%s)
say() { echo "build.sh: $*" >&2; }

if [ -e "$dist/VLAScope" ] && [ ! -f "$dist/VLAScope/$marker" ]; then
  say "refusing: $dist/VLAScope exists and was not made by packaging/build.sh"; exit 1
fi
if [ -e "$work" ] && [ ! -f "$work/$marker" ]; then
  say "refusing: $work exists and was not made by packaging/build.sh"; exit 1
fi

# The bundle links libpython dynamically: the interpreter must be built with --enable-shared.
"$python_bin" -c 'import sys, sysconfig; sys.exit(sys.version_info[:2] != (3, 11)
                  or not sysconfig.get_config_var("Py_ENABLE_SHARED"))' || {
  say "$python_bin must be Python 3.11 built with --enable-shared (set PYTHON=...)"; exit 1; }

if [ -e "$venv" ] && [ ! -f "$venv/$marker" ]; then
  say "refusing: $venv exists and is not this script's virtualenv"; exit 1
fi
if [ ! -e "$venv" ]; then
  say "making the build virtualenv $venv"
  "$python_bin" -m venv "$venv"
  touch "$venv/$marker"
fi
py="$venv/bin/python"
pip=("$py" -m pip install --disable-pip-version-check -q)
"${pip[@]}" "setuptools>=68" wheel "${pyinstaller_pins[@]}"
bash "$repo/scripts/install_torch.sh" "$py"

wheels="$(mktemp -d /tmp/vlascope-bundle-wheels.XXXXXX)"
trap 'rm -rf "$wheels"' EXIT
wheel="$(PYTHON="$py" bash "$repo/packaging/build_wheels.sh" "$wheels" | grep '/vlascope-[^/]*\.whl$')"
# --force-reinstall --no-deps: the checkout's current code even when the version is unchanged.
"${pip[@]}" "$wheel"
"${pip[@]}" --force-reinstall --no-deps "$wheel"
version="$("$py" -c 'import importlib.metadata as m; print(m.version("vlascope"))')"
say "virtualenv ready ($(( $(date +%s) - start )) s); freezing vlascope $version"

mkdir -p "$work" "$dist"
touch "$work/$marker"
freeze_start=$(date +%s)
# Run from a temporary folder: the checkout must not shadow the installed package.
(cd "$wheels" && "$py" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$work/dist" --workpath "$work/work" "$repo/packaging/vlascope.spec")
say "PyInstaller took $(( $(date +%s) - freeze_start )) s"

bundle="$work/dist/VLAScope"
# Strip the symbol tables (.symtab; the dynamic symbols stay) of the biggest libraries, which
# the wheels ship unstripped and which load fine stripped (checked by check_bundle.sh):
# libtorch_cpu.so 434 -> 345 MB, libllvmlite.so 179 -> 160 MB. Not all: stripping
# patchelf-repaired libraries (numpy's OpenBLAS) breaks them.
for lib in torch/lib/libtorch_cpu.so torch/lib/libtorch_python.so llvmlite/binding/libllvmlite.so; do
  strip "$bundle/_internal/$lib"
done
# The bundle's own desktop script: the menu entry then starts this folder's executable.
install -m 755 "$repo/packaging/install-desktop.sh" "$bundle/install-desktop.sh"
echo "vlascope $version, built $(date -u +%FT%TZ) by packaging/build.sh" > "$bundle/$marker"

tarball="$dist/VLAScope-$version-linux-x86_64.tar.gz"
if [ -e "$tarball" ] && [ ! -f "$dist/VLAScope/$marker" ]; then
  say "refusing: $tarball exists and was not made by packaging/build.sh"; exit 1
fi
rm -rf "$dist/VLAScope"
mv "$bundle" "$dist/VLAScope"
tar_start=$(date +%s)
tar -C "$dist" --exclude="VLAScope/$marker" -czf "$tarball.tmp" VLAScope
mv "$tarball.tmp" "$tarball"
say "tar.gz took $(( $(date +%s) - tar_start )) s"
say "built in $(( $(date +%s) - start )) s:"
du -sh "$dist/VLAScope" "$tarball"
