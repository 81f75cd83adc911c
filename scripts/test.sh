#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds, runs every test.
# GPU tests report "skipped" on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 1800 "$@"
