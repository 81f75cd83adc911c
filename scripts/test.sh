#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds, runs every test.
# GPU tests report "skipped" on machines without a GPU. Then the same GPU checks run on the CPU
# emulator of the CUDA backend (tests/cuda_emu: a second build, build-emu/, tests named emu_*),
# which checks the kernels' logic everywhere; UNET_SKIP_EMU=1 leaves that part out. The fuzz
# targets run briefly too (scripts/fuzz.sh; UNET_SKIP_FUZZ=1 leaves them out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 1800 "$@")
# The fuzzing harness (tests/fuzz, clang-14 + libFuzzer + ASan/UBSan, build-fuzz/): every saved
# crash input replayed, then 1000 inputs per parser from the committed seeds with a fixed seed
# (the same answer every time; about 15 s on 2 cores, build included). UNET_SKIP_FUZZ=1 leaves it out.
if [[ ${UNET_SKIP_FUZZ:-0} != 1 ]]; then
  FUZZ_RUNS=1000 bash scripts/fuzz.sh
fi
if [[ ${UNET_SKIP_EMU:-0} != 1 ]]; then
  EMU_DIR=${EMU_BUILD_DIR:-build-emu}
  cmake -S . -B "$EMU_DIR" -DCMAKE_BUILD_TYPE=Release -DUNET_WITH_CUDA=OFF -DUNET_CUDA_EMULATOR=ON >/dev/null
  cmake --build "$EMU_DIR" -j"$(nproc)" --target unet2022
  echo "build: ok ($EMU_DIR/unet2022: the CUDA backend on the CPU emulator, not a GPU)"
  (cd "$EMU_DIR" && ctest --output-on-failure --timeout 1800 -R '^emu_' "$@")
fi
