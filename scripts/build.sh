#!/usr/bin/env bash
# Configures and builds into build/ (or $BUILD_DIR). The CUDA backend is compiled and linked
# whenever nvcc is found (even without a GPU); pass -DUNET_WITH_CUDA=OFF to skip it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cuda=OFF
if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  cuda=ON
  export PATH=$PATH:/usr/local/cuda/bin
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DUNET_WITH_CUDA=$cuda "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
cuda=$(sed -n 's/^UNET_WITH_CUDA:BOOL=//p' "$BUILD_DIR/CMakeCache.txt")
echo "build: ok ($BUILD_DIR/unet2022, CUDA backend: ${cuda:-?})"
