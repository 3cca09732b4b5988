#!/usr/bin/env bash
# Start the one-folder bundle the way a machine without Python would: `env -i` (no
# PYTHONPATH, no virtualenv, PATH=/usr/bin:/bin), from an empty temporary folder, with a
# fresh HOME. Runs --version, plugins, eval --episodes 1 --json, screenshot and the bundle's
# install-desktop.sh, checks that every module it loaded came from the bundle, and prints
# times and sizes. Exit status 1 if a check failed. Output: docs/packaging.md.
#   bash packaging/check_bundle.sh [dist/VLAScope]
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$(cd "${1:-$repo/dist/VLAScope}" && pwd)" || exit 1
exe="$bundle/vlascope"
[ -x "$exe" ] || { echo "no bundle at $bundle (bash packaging/build.sh makes one)"; exit 1; }
tmp="$(mktemp -d /tmp/vlascope-check-bundle.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home" "$tmp/run"
cd "$tmp/run" || exit 1
clean=(env -i HOME="$tmp/home" PATH=/usr/bin:/bin QT_QPA_PLATFORM=offscreen MUJOCO_GL=egl)
failed=0

# check NAME TEST COMMAND...: run COMMAND in the clean environment, print its time, its
# output (trimmed) and PASS/FAIL; TEST is a bash expression on $out (the output) and $rc.
check() {
  local name="$1" test="$2"; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  out="$("${clean[@]}" "$@" 2>&1)"; rc=$?
  t1=$(date +%s.%N)
  local verdict=PASS
  eval "$test" || { verdict=FAIL; failed=1; }
  printf '\n== %s: %s (exit %d, %.1f s)\n$ %s\n' "$name" "$verdict" "$rc" \
    "$(echo "$t1 - $t0" | bc)" "$*"
  printf '%s\n' "$out" | grep -v '^\s*$' | tail -n 25
}

echo "bundle: $bundle"
echo "machine: $(uname -srm), $(ldd --version | head -n1), $(nproc) cores"
check "version" '[ $rc = 0 ] && [[ $out == vlascope\ * ]]' "$exe" --version
# Every module loaded after importing the app and the reference policy's dependencies must
# come from the bundle (sys._MEIPASS), not from a checkout or a virtualenv.
probe='import sys, vlascope, vlascope.cli, torch, transformers, mujoco, PySide6.QtWidgets
from vlascope.policies.reference import policy
root = sys._MEIPASS
outside = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())}
                 - {""})
# relative names are the frozen bootstrap modules of PyInstaller; a real file is an absolute path
outside = [f for f in outside if f.startswith("/") and not f.startswith(root)]
print("vlascope.__file__ =", vlascope.__file__, "| modules loaded:", len(sys.modules))
print("modules from outside the bundle:", outside or "none")
sys.exit(1 if outside or not vlascope.__file__.startswith(root) else 0)'
check "imports come from the bundle" '[ $rc = 0 ]' "$exe" -c "$probe"
check "plugins (entry points)" '[ $rc = 0 ] && grep -q "scene    tabletop .* ok" <<<"$out" &&
  grep -q "policy   reference .* ok" <<<"$out"' "$exe" plugins
check "eval --episodes 1 --json" '[ $rc = 0 ] && grep -q "success" <<<"$out"' \
  "$exe" eval --episodes 1 --json
check "screenshot" '[ $rc = 0 ] && [ -s shot.png ]' "$exe" screenshot --out shot.png
[ -s shot.png ] && echo "shot.png: $(file -b shot.png 2>/dev/null || stat -c %s shot.png)"
# The doctor probes rendering in a child process (the bundle's executable with -c); without
# a display here it reports the window as not working (exit status 1), which is expected.
check "doctor (its EGL probe runs in a child)" '[ $rc -le 1 ] &&
  grep -q "\[ok  \] rendering: MuJoCo via egl: rendered" <<<"$out"' "$exe" doctor
check "install-desktop.sh" '[ $rc = 0 ] &&
  grep -q "^Exec=$exe" "$tmp/share/applications/"*.desktop' \
  "$bundle/install-desktop.sh" --data-dir "$tmp/share"
grep -h '^Exec=' "$tmp/share/applications/"*.desktop 2>/dev/null
if command -v desktop-file-validate >/dev/null; then
  check "desktop-file-validate" '[ $rc = 0 ]' desktop-file-validate "$tmp/share/applications/"*.desktop
fi
check "install-desktop.sh --uninstall" '[ $rc = 0 ] &&
  ! ls "$tmp/share/applications/"*.desktop >/dev/null 2>&1' \
  "$bundle/install-desktop.sh" --uninstall --data-dir "$tmp/share"

echo
echo "== size"
du -sh "$bundle"
ls "$bundle"/../VLAScope-*-linux-x86_64.tar.gz >/dev/null 2>&1 &&
  du -sh "$bundle"/../VLAScope-*-linux-x86_64.tar.gz
echo "largest folders in _internal (top 10):"
du -s --block-size=1M "$bundle"/_internal/* | sort -rn | head -n 10 |
  awk '{n=$2; sub(".*/_internal/", "", n); printf "  %6d MiB  %s\n", $1, n}'
echo
echo "== what it needs from the system"
# The newest glibc symbol version any of its binaries asks for: the oldest glibc it runs on.
find "$bundle" -type f \( -name '*.so*' -o -name vlascope \) -print0 |
  xargs -0 objdump -T 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1 |
  sed 's/^/newest glibc symbol version needed: /'
# What it really loads from the system: the libraries mapped into a process that rendered
# a MuJoCo frame through EGL and started Qt (offscreen), outside the bundle's folder.
maps='import sys, mujoco, torch
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size=\".1\"/></worldbody></mujoco>")
with mujoco.Renderer(model, 32, 32) as r:
    r.update_scene(mujoco.MjData(model)); r.render()
libs = {l.split()[-1] for l in open("/proc/self/maps") if ".so" in l.split()[-1]}
print("\n".join(sorted(f for f in libs if not f.startswith(sys._MEIPASS))))'
echo "libraries a process that rendered through EGL and started Qt loaded from the system:"
"${clean[@]}" "$exe" -c "$maps" 2>&1 | sed 's/^/  /'
echo
[ $failed = 0 ] && echo "ALL CHECKS PASSED" || echo "SOME CHECKS FAILED"
exit $failed
