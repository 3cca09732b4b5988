#!/usr/bin/env bash
# Screenshot of the bundled app's window on a real X server (Xvfb, Qt's xcb platform), not
# Qt's offscreen one: the bundle's xcb plugin and the system's X libraries are exercised.
# Needs Debian's xvfb only: the capture is a second process of the bundle itself (Qt's
# QScreen.grabWindow of the root window), so no xwd/ImageMagick.
#   bash packaging/screenshot_xvfb.sh [dist/VLAScope] [docs/images/bundle-xvfb.png]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$(cd "${1:-$repo/dist/VLAScope}" && pwd)"
out="$(realpath -m "${2:-$repo/docs/images/bundle-xvfb.png}")"
display="${DISPLAY_NUMBER:-:99}"
wait_s="${WAIT_S:-40}"  # the window's first rollout frame comes after torch and the policy load
tmp="$(mktemp -d /tmp/vlascope-xvfb.XXXXXX)"
mkdir -p "$tmp/home"
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
xvfb=$!
app=""
cleanup() {
  [ -n "$app" ] && kill "$app" 2>/dev/null
  kill "$xvfb" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
sleep 2
kill -0 "$xvfb" || { cat "$tmp/xvfb.log"; exit 1; }
# Clean environment as in check_bundle.sh: nothing of a Python installation is reachable.
(cd "$tmp" && exec env -i HOME="$tmp/home" PATH=/usr/bin:/bin DISPLAY="$display" \
  QT_QPA_PLATFORM=xcb MUJOCO_GL=egl "$bundle/vlascope" app "$@" >"$tmp/app.log" 2>&1) &
app=$!
sleep "$wait_s"
kill -0 "$app" || { echo "the app exited:"; cat "$tmp/app.log"; exit 1; }
mkdir -p "$(dirname "$out")"
grab='import sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)'
env -i HOME="$tmp/home" PATH=/usr/bin:/bin DISPLAY="$display" QT_QPA_PLATFORM=xcb \
  "$bundle/vlascope" -c "$grab" "$out"
echo "screenshot -> $out"
sed 's/^/app: /' "$tmp/app.log" | tail -n 20
