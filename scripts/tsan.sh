#!/usr/bin/env bash
# Builds the torch-free libraries, services and their tests with ThreadSanitizer
# (-DT2_TSAN=ON) into ./build-tsan (or $T2_TSAN_BUILD_DIR) and runs them: common, names, the
# registry's store (concurrent publishes, Watch waits, the file lock), adapt, rpc, the
# dispatcher's handlers in-process, and the registry binary as a process.
#
# The gRPC-based tests run against gRPC and Abseil rebuilt with TSan (scripts/tsan_deps.sh,
# built once into $T2_HOME): Debian's copies are not instrumented, and TSan, blind to the
# synchronization inside them, reports hundreds of races in gRPC's own call code per test.
# tsan_canary proves both halves: a gRPC call is clean and a real race is reported.
#
# Any report fails the run: the process that hits it halts (TSAN_OPTIONS in the top-level
# CMakeLists.txt), and every report of every process a test starts, the registry included,
# is also written under <build>/sanitizer-reports, which must be empty at the end.
# Suppressions, each with its reason, would go in cmake/sanitizers/tsan.supp.
# Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitizer_reports.sh
export T2_BUILD_DIR=${T2_TSAN_BUILD_DIR:-build-tsan}
export T2_BUILD_TYPE=${T2_BUILD_TYPE:-RelWithDebInfo}
deps=$(scripts/tsan_deps.sh)
TESTS=(common_test names_test store_test adapt_test rpc_test registry_test dispatcher_service_test)
echo "[tsan] building ${TESTS[*]} in $T2_BUILD_DIR against $deps"
# build.sh configures; only these targets (and the registry binary registry_test starts) are built.
T2_BUILD_TARGETS="${TESTS[*]} tsan_canary" scripts/build.sh -DT2_TSAN=ON -DT2_TSAN_DEPS_DIR="$deps" \
  -DT2_BUILD_BENCH=OFF -DT2_WITH_CUDA=OFF
cd "$T2_BUILD_DIR"
reset_sanitizer_reports
echo "[tsan] running them under ThreadSanitizer"
# A binary's tests are one ctest entry each (<binary>.<Suite>.<Test>) or the binary itself.
regex="^($(IFS='|'; echo "${TESTS[*]}"))(\\..*)?\$|^tsan_canary_"
rc=0
ctest --output-on-failure -j "${T2_TEST_JOBS:-2}" -R "$regex" "$@" || rc=$?
check_sanitizer_reports tsan
exit $rc
