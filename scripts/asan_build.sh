#!/usr/bin/env bash
# Configures and builds the AddressSanitizer + UndefinedBehaviorSanitizer configuration into
# ./build-asan (or $T2_ASAN_BUILD_DIR): scripts/sanitize.sh runs the tests in it and
# scripts/fuzz.sh the libFuzzer targets, so each object is compiled once for both (a separate
# fuzz build cost 126 s of a cold CI run, 2026-12-05).
#
# clang, because libFuzzer is clang's, and because clang compiled this configuration's largest
# source (services/t2's first unity batch, ASan at -O1) in 30.8 s where GCC 12 took 40.9 s.
# Debug (asserts on), compiled at -O1 (the top-level CMakeLists.txt says why; test code at -O0).
# The libraries the fuzz targets link carry libFuzzer's coverage instrumentation
# (-DT2_BUILD_FUZZ=ON, tests/fuzz/CMakeLists.txt); in the tests' binaries its hooks are the ASan
# runtime's no-ops.
#
# Only the unit and integration tests are compiled (T2_TEST_LABELS): scripts/test.sh runs
# the parity tests. T2_BUILD_TARGETS: only these targets (space-separated); all by default.
set -euo pipefail
cd "$(dirname "$0")/.."
export T2_BUILD_DIR=${T2_ASAN_BUILD_DIR:-build-asan}
export T2_BUILD_TYPE=${T2_BUILD_TYPE:-Debug}
# A folder an older script configured with GCC: CMake cannot switch a configured folder's
# compiler, and everything in it is compiled again anyway.
cache=$T2_BUILD_DIR/CMakeCache.txt
if [ -f "$cache" ] && ! grep -q '^CMAKE_CXX_COMPILER:FILEPATH=.*clang++$' "$cache"; then
  echo "[asan] $T2_BUILD_DIR was configured with another compiler: configuring it again with clang"
  rm -rf "$T2_BUILD_DIR"
fi
export CC=clang CXX=clang++
scripts/build.sh -DT2_SANITIZE=ON -DT2_BUILD_FUZZ=ON -DT2_BUILD_BENCH=OFF \
  "-DT2_TEST_LABELS=unit;integration"
