#!/usr/bin/env bash
# Prepares, on a machine with the package registries, what a GPU server without them needs to run
# the tuner through native WebGPU: wgpu's wheels for the server's Python (3.12 by default) and
# Debian's Vulkan loader, into .gpu/ (ignored by git). Then copy the repository with .gpu/ to the
# server and run bench/gpu/run.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYVER=${PYVER:-3.12}
mkdir -p .gpu/wheels .gpu/debs
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${plat[@]}" -d .gpu/wheels \
  wgpu==0.32.0 cffi==2.1.1 pycparser==3.12 rendercanvas==2.7.2 sniffio==1.3.1
# The Vulkan loader, and the GL dispatch libraries NVIDIA's Vulkan ICD (libGLX_nvidia) links against.
debs=(libvulkan1 libglvnd0 libglx0 libegl1 libopengl0 libgl1 libgles2)
if [ "$(ls .gpu/debs/*.deb 2>/dev/null | wc -l)" -lt ${#debs[@]} ]; then
  lists=$(mktemp -d)
  mkdir -p "$lists/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists="$lists")
  apt-get "${o[@]}" update -qq
  (cd .gpu/debs && apt-get "${o[@]}" download "${debs[@]}" 2>&1 | grep -v unsandboxed || true)
  rm -rf "$lists"
fi
du -sh .gpu
ls .gpu/wheels .gpu/debs
