#!/usr/bin/env bash
# Builds the torch-free services and their tests with ThreadSanitizer (-DT2_TSAN=ON) into
# ./build-tsan (or $T2_TSAN_BUILD_DIR) and runs them: the store, the registry (library and
# binary), the dispatcher's service, rpc (TLS, roles, server limits), adapt and common. Any
# report fails the test that triggered it (TSAN_OPTIONS in the top-level CMakeLists.txt;
# suppressions, each with its reason, in cmake/sanitizers/tsan.supp).
# Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
export T2_BUILD_DIR=${T2_TSAN_BUILD_DIR:-build-tsan}
export T2_BUILD_TYPE=${T2_BUILD_TYPE:-RelWithDebInfo}
TESTS=(common_test store_test rpc_test adapt_test dispatcher_service_test registry_test)
echo "[tsan] building ${TESTS[*]} in $T2_BUILD_DIR"
# build.sh configures; only the torch-free targets are built.
T2_BUILD_TARGETS="${TESTS[*]} t2-registry" scripts/build.sh -DT2_TSAN=ON -DT2_BUILD_BENCH=OFF -DT2_WITH_CUDA=OFF
cd "$T2_BUILD_DIR"
echo "[tsan] running them under ThreadSanitizer"
regex="^($(IFS='|'; echo "${TESTS[*]}"))\$"
ctest --output-on-failure -j "${T2_TEST_JOBS:-2}" -R "$regex" "$@"
