#!/usr/bin/env bash
# Builds and runs the whole test suite (ctest). Extra arguments go to ctest
# (e.g. -L unit, -R gguf). GPU tests skip on machines without one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
BUILD_DIR=${T2_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "${T2_TEST_JOBS:-2}" "$@"
