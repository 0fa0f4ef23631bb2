#!/usr/bin/env bash
# Builds t2serve with AddressSanitizer + UndefinedBehaviorSanitizer (scripts/asan_build.sh:
# clang, -DT2_SANITIZE=ON, into ./build-asan or $T2_ASAN_BUILD_DIR) and runs the unit and
# integration tests there: the services the integration tests start (registry, worker,
# dispatcher, trainer, the t2 tool) run sanitized too. The parity tests (HF reference
# comparisons, minutes of model compute) are left to scripts/test.sh.
# Any ASan, LSan or UBSan report fails the run: the process that hits it halts (options in
# the top-level CMakeLists.txt, in each test's ctest environment), and the ASan, LSan and
# UBSan reports of every process, the services a test starts included, are also written under
# <build>/sanitizer-reports, which must be empty at the end.
# Extra arguments go to ctest (e.g. -R gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitizer_reports.sh
build_dir=${T2_ASAN_BUILD_DIR:-build-asan}
echo "[sanitize] building $build_dir (ASan+UBSan)"
scripts/asan_build.sh
cd "$build_dir"
reset_sanitizer_reports
echo "[sanitize] running the unit and integration tests under ASan+UBSan"
rc=0
ctest --output-on-failure -j "${T2_TEST_JOBS:-2}" -L 'unit|integration' "$@" || rc=$?
check_sanitizer_reports sanitize
exit $rc
