#!/usr/bin/env bash
# Installs everything jitfarm needs on a Debian machine: Debian's Chromium and Vulkan drivers,
# the harness's npm packages from the lockfile, Appium (farm/appium/, lockfile) with its pinned
# Chromium driver, and the Python package with its pinned dependencies in .venv/.
# `--android` adds what phones need: adb, a JDK and Appium's UiAutomator2 driver.
# Safe to run twice: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

ANDROID=0
for arg in "$@"; do
  case "$arg" in
    --android) ANDROID=1 ;;
    *) echo "usage: $0 [--android]" >&2; exit 2 ;;
  esac
done
# Appium drivers, pinned (installed into APPIUM_HOME=farm/appium/home).
APPIUM_CHROMIUM_DRIVER=appium-chromium-driver@3.1.1
APPIUM_UIAUTOMATOR2_DRIVER=appium-uiautomator2-driver@8.7.0

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages (Debian).
pkgs=(chromium chromium-driver mesa-vulkan-drivers)
[ "$ANDROID" -eq 0 ] || pkgs+=(adb openjdk-17-jdk-headless)
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

# npm ci in folder $1 exactly as its lockfile pins, skipped while the lockfile is unchanged; $2 names it.
npm_from_lockfile() {
  local stamp="$1/node_modules/.jitfarm-lock"
  if [ ! -f "$stamp" ] || ! cmp -s "$1/package-lock.json" "$stamp"; then
    say "installing $2 from $1/package-lock.json"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$1/package-lock.json" "$stamp"
  else
    say "$2 up to date"
  fi
}

# 2. The harness's npm packages (TF.js, ONNX Runtime Web).
npm_from_lockfile farm/harness "harness npm packages"

# 3. Appium (for the appium driver): the server from farm/appium's lockfile, its drivers pinned.
npm_from_lockfile farm/appium "Appium"
appium_driver() {  # $1: automation name, $2: npm spec name@version
  local have
  have=$(APPIUM_HOME=farm/appium/home node farm/appium/node_modules/appium/index.js driver list --installed --json 2>/dev/null \
         | python3 -c "import json,sys; d=json.load(sys.stdin).get('$1') or {}; print(d.get('version', ''))" 2>/dev/null || true)
  if [ "$have" = "${2##*@}" ]; then
    say "Appium driver $1 $have present"
    return
  fi
  if [ -n "$have" ]; then
    APPIUM_HOME=farm/appium/home node farm/appium/node_modules/appium/index.js driver uninstall "$1" >/dev/null
  fi
  say "installing Appium driver $2"
  local log
  if ! log=$(APPIUM_HOME=farm/appium/home node farm/appium/node_modules/appium/index.js driver install --source=npm "$2" 2>&1); then
    printf '%s\n' "$log" >&2
    exit 1
  fi
}
appium_driver chromium "$APPIUM_CHROMIUM_DRIVER"
[ "$ANDROID" -eq 0 ] || appium_driver uiautomator2 "$APPIUM_UIAUTOMATOR2_DRIVER"

# 4. Python: jitfarm and its pinned dependencies in .venv/.
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
