#!/usr/bin/env bash
# Installs everything jitfarm needs on a Debian machine: Debian's Chromium and Vulkan drivers,
# the harness's npm packages from the lockfile, and the Python package with its pinned
# dependencies in .venv/. Safe to run twice: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages (Debian).
pkgs=(chromium chromium-driver mesa-vulkan-drivers)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  pkgs+=(python3-venv)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# 2. The harness's npm packages (TF.js, ONNX Runtime Web), exactly as the lockfile pins them.
stamp=farm/harness/node_modules/.jitfarm-lock
if [ ! -f "$stamp" ] || ! cmp -s farm/harness/package-lock.json "$stamp"; then
  say "installing harness npm packages from farm/harness/package-lock.json"
  (cd farm/harness && npm ci --no-audit --no-fund --loglevel=error)
  cp farm/harness/package-lock.json "$stamp"
else
  say "harness npm packages up to date"
fi

# 3. Python: jitfarm and its pinned dependencies in .venv/.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.jitfarm-pyproject
if [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  say "installing jitfarm and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  cp pyproject.toml "$stamp"
else
  say "Python packages up to date"
fi
say "ready: .venv/bin/jitfarm"
