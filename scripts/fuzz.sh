#!/usr/bin/env bash
# Fuzzes the GGUF and safetensors readers with libFuzzer under ASan+UBSan. Not part of the
# default test run.
#
#   scripts/fuzz.sh [safetensors] [gguf]     (default: both)
#
# Configures a separate clang build in $T2_FUZZ_BUILD_DIR (default build-fuzz), builds only the
# fuzz targets, seeds each corpus with small valid files the reference Python packages write
# (tests/fuzz/make_seeds.py), and runs each fuzzer for $FUZZ_SECONDS (default 120) seconds.
# Exits non-zero if any fuzzer crashes or a sanitizer reports; the reproducer is saved under
# $T2_FUZZ_BUILD_DIR/crashes/ (replay: <build>/tests/fuzz/<reader>_fuzz <file>).
set -euo pipefail
cd "$(dirname "$0")/.."
T2_HOME=${T2_HOME:-$HOME/.cache/t2serve}
PY=$T2_HOME/venv/bin/python
[ -x "$PY" ] || { echo "[fuzz] $PY missing: run scripts/setup.sh first" >&2; exit 1; }
BUILD_DIR=${T2_FUZZ_BUILD_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-120}
READERS=("$@")
[ ${#READERS[@]} -gt 0 ] || READERS=(safetensors gguf)

say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }

mkdir -p "$BUILD_DIR"
TORCH_PREFIX=$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
# Tests must be on for tests/fuzz to be configured; only the fuzz targets are built.
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DT2_PYTHON="$PY" -DT2_SANITIZE=ON -DT2_BUILD_FUZZ=ON \
  -DT2_BUILD_TESTS=ON -DT2_BUILD_BENCH=OFF -DT2_WITH_CUDA=OFF >"$BUILD_DIR/configure.log" 2>&1 \
  || { cat "$BUILD_DIR/configure.log" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j "${T2_JOBS:-$(nproc)}" --target "${READERS[@]/%/_fuzz}"

"$PY" tests/fuzz/make_seeds.py --out "$BUILD_DIR/seeds" >/dev/null
mkdir -p "$BUILD_DIR/crashes"

# Leaks count as failures; UBSan findings abort (T2_SANITIZE sets -fno-sanitize-recover).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for reader in "${READERS[@]}"; do
  corpus=$BUILD_DIR/corpus/$reader
  mkdir -p "$corpus"
  log=$BUILD_DIR/$reader-fuzz.log
  say "$reader: ${FUZZ_SECONDS}s (log: $log)"
  # The first corpus folder receives new inputs; the seeds folder is only read.
  if "$BUILD_DIR/tests/fuzz/${reader}_fuzz" "$corpus" "$BUILD_DIR/seeds/$reader" \
      -max_total_time="$FUZZ_SECONDS" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
      -dict="tests/fuzz/$reader.dict" -artifact_prefix="$BUILD_DIR/crashes/$reader-" \
      -print_final_stats=1 >"$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    say "$reader: clean, ${execs:-?} executions, $cov, corpus $(ls "$corpus" | wc -l) files"
  else
    failed+=("$reader")
    say "$reader: FAILED"
    grep -E 'ERROR:|runtime error|SUMMARY|invariant failed|Test unit written' "$log" >&2 || tail -30 "$log" >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  say "crashes in: ${failed[*]} (reproducers in $BUILD_DIR/crashes/)"
  exit 1
fi
say "all clean"
