#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds, runs every test.
# GPU tests report "skipped" on machines without a GPU. Then, each leaving its part out when
# its variable is 1:
#   UNET_SKIP_MIN   the smallest configuration, -DUNET_WITH_MPI=OFF -DUNET_WITH_CUDA=OFF
#                   (build-min/): its unit and CLI tests (not the PyTorch-oracle tests a second
#                   time); the cases that need several ranks and the GPU checks report "skipped";
#   UNET_SKIP_FUZZ  the fuzzing harness (tests/fuzz, clang-14 + libFuzzer + ASan/UBSan,
#                   build-fuzz/): every saved crash input replayed, then 1000 inputs per parser
#                   from the committed seeds with a fixed seed (the same answer every time);
#   UNET_SKIP_EMU   the same GPU checks on the CPU emulator of the CUDA backend (tests/cuda_emu:
#                   build-emu/, tests named emu_*), which checks the kernels' logic everywhere;
#   UNET_SKIP_ASAN  the unit and CLI tests once more under AddressSanitizer + UndefinedBehavior-
#                   Sanitizer (build-asan/: no CUDA, no MPI, leak checks on, any UB report fails
#                   the test; the Slurm job-script tests are left out: they add no code path of
#                   their own, only minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 1800 "$@")
if [[ ${UNET_SKIP_MIN:-0} != 1 ]]; then
  MIN_DIR=${MIN_BUILD_DIR:-build-min}
  cmake -S . -B "$MIN_DIR" -DCMAKE_BUILD_TYPE=Release -DUNET_WITH_MPI=OFF -DUNET_WITH_CUDA=OFF >/dev/null
  cmake --build "$MIN_DIR" -j"$(nproc)"
  echo "build: ok ($MIN_DIR/unet2022: no MPI, no CUDA)"
  (cd "$MIN_DIR" && ctest --output-on-failure --timeout 1800 -E '^py_' "$@")
fi
if [[ ${UNET_SKIP_FUZZ:-0} != 1 ]]; then
  FUZZ_RUNS=1000 bash scripts/fuzz.sh
fi
if [[ ${UNET_SKIP_EMU:-0} != 1 ]]; then
  EMU_DIR=${EMU_BUILD_DIR:-build-emu}
  cmake -S . -B "$EMU_DIR" -DCMAKE_BUILD_TYPE=Release -DUNET_WITH_CUDA=OFF -DUNET_CUDA_EMULATOR=ON >/dev/null
  cmake --build "$EMU_DIR" -j"$(nproc)" --target unet2022 unet2022-check
  echo "build: ok ($EMU_DIR/unet2022, unet2022-check: the CUDA backend on the CPU emulator, not a GPU)"
  (cd "$EMU_DIR" && ctest --output-on-failure --timeout 1800 -R '^emu_' "$@")
fi
if [[ ${UNET_SKIP_ASAN:-0} != 1 ]]; then
  # No MPI and no CUDA here: Open MPI's and the CUDA runtime's own allocations are not ours to
  # report, and the MPI/GPU code paths are covered by the builds above. OpenBLAS and HDF5 run
  # clean under ASan/LSan; should a library report appear, suppress it narrowly in
  # tests/sanitizer/ rather than turning a check off.
  ASAN_DIR=${ASAN_BUILD_DIR:-build-asan}
  san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  cmake -S . -B "$ASAN_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNET_WITH_MPI=OFF -DUNET_WITH_CUDA=OFF \
    -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  cmake --build "$ASAN_DIR" -j"$(nproc)"
  echo "build: ok ($ASAN_DIR/unet2022: AddressSanitizer + UndefinedBehaviorSanitizer, no MPI, no CUDA)"
  (cd "$ASAN_DIR" && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    ctest --output-on-failure --timeout 1800 -E '^py_|^cli_test_slurm' "$@")
fi
