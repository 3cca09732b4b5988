# Shared by the scripts that build a policy family's virtualenv (scripts/*_env.sh; the names
# and scripts are listed in vlascope/core/environments.py). Sourced, not run. Each build:
# once per machine, outside the repository, under a name that hashes the script's pins (a
# changed pin makes a new environment); in a temporary folder renamed into place at the end,
# so a half-built environment is never reused; CPU torch first, so nothing can pull a CUDA
# build on a machine without a GPU. The python is printed on the last line of stdout
# (progress goes to stderr); `--built` only prints it (exit status 1 when not built yet).
#
#   env_begin NAME "$pins" "$@"   prints the python and exits when built; else makes the
#                                 temporary venv ($tmp) with torch and numpy, sets $pip and
#                                 $constraints (torch and numpy as installed)
#   env_check_pip REGEX           pip check, ignoring the lines REGEX matches (what was
#                                 skipped on purpose with --no-deps)
#   env_finish                    marks it complete, moves it into place, prints the python

env_log() { echo "${env_name}_env: $*" >&2; }

env_begin() {
  env_name="$1"; local pins="$2"; shift 2
  local hash root
  hash=$(printf '%s' "$pins" | sha256sum | cut -c1-12)
  root="${XDG_CACHE_HOME:-$HOME/.cache}/vlascope"
  env="$root/$env_name-env-$hash"
  if [ -x "$env/bin/python" ] && [ -f "$env/.complete" ]; then
    echo "$env/bin/python"
    exit 0
  fi
  [ "${1:-}" != --built ] || exit 1

  local python_bin="" cand
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin="$cand"; break
    fi
  done
  [ -n "$python_bin" ] || { env_log "Python 3.11 is required"; exit 1; }

  mkdir -p "$root"
  tmp=$(mktemp -d "$root/.$env_name-env-$hash.XXXXXX")
  trap 'rm -rf "$tmp" "${constraints:-}"' EXIT
  env_start=$(date +%s)
  env_log "building $env (in $tmp)"
  "$python_bin" -m venv "$tmp"
  pip=("$tmp/bin/python" -m pip install --disable-pip-version-check -q)

  local numpy="${ENV_NUMPY:-numpy}" local_wheel
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    env_log "NVIDIA GPU found: torch with CUDA"
    "${pip[@]}" "torch==2.13.0" "$numpy"
  else
    local_wheel=$(ls /opt/wheels/torch-2.13.0+cpu-cp311-*.whl 2>/dev/null | head -n1 || true)
    if [ -n "$local_wheel" ]; then
      "${pip[@]}" "$local_wheel" "$numpy"
    else
      "${pip[@]}" "torch==2.13.0" "$numpy" --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple
    fi
    "$tmp/bin/python" -c 'import sys, torch; sys.exit(torch.version.cuda is not None)' ||
      { env_log "refusing a CUDA build of torch on a machine without a GPU"; exit 1; }
  fi
  constraints=$(mktemp)
  "$tmp/bin/python" -c 'import torch, numpy; print(f"torch=={torch.__version__}\nnumpy=={numpy.__version__}")' > "$constraints"
}

env_check_pip() {
  local unexpected
  unexpected=$("$tmp/bin/python" -m pip check 2>&1 | grep -vE "$1|^No broken" || true)
  [ -z "$unexpected" ] || { env_log "pip check: $unexpected"; exit 1; }
}

env_finish() {
  touch "$tmp/.complete"
  # A venv remembers its folder (pyvenv.cfg, activate scripts): the interpreter found
  # through bin/python works from anywhere, and pip is only ever run as `python -m pip`.
  if mv -T "$tmp" "$env" 2>/dev/null; then
    rm -f "$constraints"
    trap - EXIT
  else
    [ -f "$env/.complete" ] || { env_log "could not move $tmp to $env"; exit 1; }
    env_log "another build finished first; using it"
  fi
  env_log "ready in $(( $(date +%s) - env_start )) s"
  echo "$env/bin/python"
}
