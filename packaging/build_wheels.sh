#!/usr/bin/env bash
# Wheels of VLAScope and of each first-party plugin, built from what a clone holds (tracked
# files and new ones git does not ignore, copied to a temporary folder), so a stale build/
# folder or a local .venv never leaks into a wheel. The shipped reference models travel as
# package data. Prints the wheels' paths.
#   bash packaging/build_wheels.sh [OUT]      (default OUT: dist/)
#   PYTHON=/path/to/python bash packaging/build_wheels.sh   (needs setuptools and wheel)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)"
python_bin="${PYTHON:-$repo/.venv/bin/python}"
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
  tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$src"
built=()
for project in "$src" "$src"/plugins/vlascope-*; do
  "$python_bin" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$out" "$project" >&2
  name=$(basename "$project"); [ "$project" = "$src" ] && name=vlascope
  built+=("$(ls -t "$out"/"${name//-/_}"-*.whl | head -n1)")
done
printf '%s\n' "${built[@]}"
