#!/usr/bin/env bash
# Runs on the GPU server, from the repository root, with .gpu/ prepared by bench/gpu/prepare.sh:
# installs the carried wheels into a private folder, unpacks the Vulkan loader, points it at the
# NVIDIA driver's ICD and runs bench/kernels.py with the arguments given (results under results/,
# or $OUT when set), or with `models ARGS...` bench/models.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/jitfarm-site .gpu/wheels/*.whl
export PYTHONPATH=/tmp/jitfarm-site${PYTHONPATH:+:$PYTHONPATH}
# The Vulkan loader and the GL dispatch libraries the NVIDIA ICD (libGLX_nvidia) needs.
for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}
export PYTHONUNBUFFERED=1
if [ "${1:-}" = "models" ]; then
  shift
  exec python3 bench/models.py "$@"
fi
exec python3 bench/kernels.py "$@"
