#!/usr/bin/env bash
# Builds t2serve with AddressSanitizer + UndefinedBehaviorSanitizer (-DT2_SANITIZE=ON) into
# ./build-asan (or $T2_BUILD_DIR) and runs the unit tests there. Any ASan, LSan or UBSan
# report fails the test that triggered it: the runtime options live in the top-level
# CMakeLists.txt and reach every test through ctest's environment.
# Extra arguments go to ctest (e.g. -R gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
export T2_BUILD_DIR=${T2_BUILD_DIR:-build-asan}
export T2_BUILD_TYPE=${T2_BUILD_TYPE:-Debug}
echo "[sanitize] building $T2_BUILD_DIR (ASan+UBSan, $T2_BUILD_TYPE)"
scripts/build.sh -DT2_SANITIZE=ON -DT2_BUILD_BENCH=OFF
cd "$T2_BUILD_DIR"
echo "[sanitize] running unit tests under ASan+UBSan"
ctest --output-on-failure -j "${T2_TEST_JOBS:-2}" -L unit "$@"
