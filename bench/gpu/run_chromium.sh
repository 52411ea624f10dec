#!/usr/bin/env bash
# Runs on the GPU server from the repository root: keeps the parts of the Chromium that
# bench/gpu/prepare_chromium.sh packed as they arrive (.gpu-chromium/ and .gpu-chromium-2/ come in
# separate transfers) in $CHROMIUM_HOME, unpacks it once all are there, sets up the Vulkan loader for
# the NVIDIA driver as bench/gpu/run.sh does, and runs bench/gpu/chromium_probe.py with the
# arguments given, or with `kernels ARGS...` bench/kernels.py, or with `models ARGS...`
# bench/models.py, through that browser (device chromium-cdp-vulkan-gpu); `--unpack-only`: just
# keep the parts. .gpu-ort/ (ONNX Runtime Web's and TF.js's dist files) is unpacked into the
# harness's node_modules when it comes.
set -euo pipefail
cd "$(dirname "$0")/../.."
home=${CHROMIUM_HOME:-/tmp/jitfarm-chromium}
mkdir -p "$home"
mkdir -p "$home/parts"
for d in .gpu-chromium .gpu-chromium-2 .gpu-ort; do
  [ -d "$d" ] && cp -n "$d"/* "$home/parts/" 2>/dev/null || true
done
if [ ! -x "$home/chromium/chromium" ] && [ -f "$home/parts/SHA256SUMS" ] && [ -f "$home/parts/browser.tar.xz.part-01" ]; then
  cat "$home"/parts/browser.tar.xz.part-* > "$home/parts/browser.tar.xz"
  (cd "$home/parts" && sha256sum -c SHA256SUMS)
  tar -C "$home" -xJf "$home/parts/browser.tar.xz"
  rm -f "$home/parts/browser.tar.xz"
fi
[ -f "$home/parts/libs.tar.xz" ] && [ ! -d "$home/libs" ] && tar -C "$home" -xJf "$home/parts/libs.tar.xz"
ort=farm/harness/node_modules/onnxruntime-web/dist
if [ -f "$home/parts/ort-dist.tar.xz" ] && [ ! -f "$ort/ort.all.min.mjs" ]; then
  mkdir -p "$ort" && tar -C "$ort" -xJf "$home/parts/ort-dist.tar.xz"
fi
if [ -f "$home/parts/tfjs-dist.tar.xz" ] && [ ! -f farm/harness/node_modules/@tensorflow/tfjs/dist/tf.min.js ]; then
  tar -C farm/harness/node_modules -xJf "$home/parts/tfjs-dist.tar.xz"
fi
echo "have: $(ls "$home" "$home/parts" | tr '\n' ' ')"
[ "${1:-}" = "--unpack-only" ] && exit 0
[ -x "$home/chromium/chromium" ] || { echo "the browser is not complete yet: transfer .gpu-chromium and .gpu-chromium-2" >&2; exit 2; }
if [ -d .gpu/debs ]; then
  for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}
export LD_LIBRARY_PATH="$home/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "libraries the browser still misses:"; ldd "$home/chromium/chromium" | grep "not found" || echo "  none"
export PYTHONUNBUFFERED=1
if [ "${1:-}" = "kernels" ]; then
  shift
  exec python3 bench/kernels.py --device chromium-cdp-vulkan-gpu "$@"
fi
if [ "${1:-}" = "models" ]; then
  shift
  exec python3 bench/models.py --device chromium-cdp-vulkan-gpu "$@"
fi
exec python3 bench/gpu/chromium_probe.py --chromium "$home/chromium/chromium" "$@"
