#!/usr/bin/env bash
# Builds the torch-free libraries and their tests with ThreadSanitizer (-DT2_TSAN=ON) into
# ./build-tsan (or $T2_TSAN_BUILD_DIR) and runs them: common, the registry's store (its
# concurrent publishes, Watch waits and file lock) and adapt. Any report fails the test that
# triggered it (TSAN_OPTIONS in the top-level CMakeLists.txt; suppressions, each with its
# reason, in cmake/sanitizers/tsan.supp).
#
# Not yet the gRPC-based tests (rpc, dispatcher_service, registry): Debian's gRPC is not
# instrumented, and its threads hand messages to one another through synchronization TSan
# cannot see, so it reports thousands of races inside gRPC's own buffers (grpc_byte_buffer,
# tcp_send, ProtoBufferReader). They need a gRPC built with -fsanitize=thread.
# Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
export T2_BUILD_DIR=${T2_TSAN_BUILD_DIR:-build-tsan}
export T2_BUILD_TYPE=${T2_BUILD_TYPE:-RelWithDebInfo}
TESTS=(common_test store_test adapt_test)
echo "[tsan] building ${TESTS[*]} in $T2_BUILD_DIR"
# build.sh configures; only the torch-free targets are built.
T2_BUILD_TARGETS="${TESTS[*]}" scripts/build.sh -DT2_TSAN=ON -DT2_BUILD_BENCH=OFF -DT2_WITH_CUDA=OFF
cd "$T2_BUILD_DIR"
echo "[tsan] running them under ThreadSanitizer"
regex="^($(IFS='|'; echo "${TESTS[*]}"))\$"
ctest --output-on-failure -j "${T2_TEST_JOBS:-2}" -R "$regex" "$@"
