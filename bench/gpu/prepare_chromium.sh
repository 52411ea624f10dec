#!/usr/bin/env bash
# Packs this machine's Debian Chromium for a GPU server that reaches no package registry, in two
# folders that each fit one 64 MiB transfer: .gpu-chromium/ (the first 60 MiB of browser.tar.xz,
# the browser trimmed to what headless needs: no validation layers, one locale) and
# .gpu-chromium-2/ (the rest of it, libs.tar.xz with every shared library the browser links to
# except the C library's own, and SHA256SUMS); and .gpu-ort/ (ONNX Runtime Web's and TF.js's dist
# files from farm/harness/node_modules, for the ORT-Web and TF.js baselines of bench/models.py and
# bench/kernels.py). bench/gpu/run_chromium.sh,
# run there once per transfer, keeps the parts and unpacks the browser when it has them all.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=${CHROMIUM_DIR:-/usr/lib/chromium}
[ -x "$src/chromium" ] || { echo "no Chromium in $src: run scripts/setup.sh first (Debian package chromium)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf .gpu-chromium .gpu-chromium-2
mkdir -p "$work/chromium/locales" "$work/libs" .gpu-chromium .gpu-chromium-2
for f in chromium chrome_crashpad_handler icudtl.dat resources.pak chrome_100_percent.pak v8_context_snapshot.bin \
         snapshot_blob.bin libvulkan.so.1 libEGL.so libGLESv2.so libvk_swiftshader.so vk_swiftshader_icd.json; do
  [ -e "$src/$f" ] && cp -L "$src/$f" "$work/chromium/"
done
cp "$src/locales/en-US.pak" "$work/chromium/locales/"
# Libraries: everything ldd resolves, less glibc's own (the server's must be used with its loader).
ldd "$src/chromium" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libresolv.so*) ;;
    *) cp -L "$lib" "$work/libs/" ;;
  esac
done
chromium_version=$("$src/chromium" --version 2>/dev/null || echo unknown)
echo "$chromium_version" > "$work/chromium/VERSION"
XZ_OPT="-9 -T2" tar -C "$work" -cJf "$work/browser.tar.xz" chromium
XZ_OPT="-9 -T2" tar -C "$work" -cJf .gpu-chromium-2/libs.tar.xz libs
(cd "$work" && sha256sum browser.tar.xz) > .gpu-chromium-2/SHA256SUMS
split -b 60M -d -a 2 "$work/browser.tar.xz" "$work/browser.tar.xz.part-"
mv "$work/browser.tar.xz.part-00" .gpu-chromium/
mv "$work"/browser.tar.xz.part-* .gpu-chromium-2/
ort=farm/harness/node_modules/onnxruntime-web/dist
[ -f "$ort/ort.all.min.mjs" ] || { echo "no $ort: run scripts/setup.sh first (npm ci of the harness)" >&2; exit 2; }
rm -rf .gpu-ort && mkdir -p .gpu-ort
(cd "$ort" && XZ_OPT="-6 -T2" tar -cJf - ort.all.min.mjs ort-wasm-simd-threaded*.mjs ort-wasm-simd-threaded*.wasm) \
  > .gpu-ort/ort-dist.tar.xz
# TF.js: the files farm/harness/static/baseline_tfjs.js loads, paths relative to node_modules/
(cd farm/harness/node_modules && XZ_OPT="-6 -T2" tar -cJf - @tensorflow/tfjs/dist/tf.min.js \
  @tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js @tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js \
  @tensorflow/tfjs-backend-wasm/dist/*.wasm) > .gpu-ort/tfjs-dist.tar.xz
echo "$chromium_version: $(ls "$work/libs" | wc -l) libraries"
du -sh .gpu-chromium .gpu-chromium-2 .gpu-ort
