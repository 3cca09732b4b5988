#!/usr/bin/env bash
# Add this bundle to the desktop's menus (icon, episode MIME type): the entry starts the
# vlascope executable beside this script. Options as `vlascope install-desktop`
# (--uninstall, --data-dir DIR). Copied into dist/VLAScope/ by packaging/build.sh.
exec "$(cd "$(dirname "$0")" && pwd)/vlascope" install-desktop "$@"
