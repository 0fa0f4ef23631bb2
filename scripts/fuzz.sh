#!/usr/bin/env bash
# Runs the libFuzzer targets (tests/fuzz/) under ASan+UBSan. Not part of the default test run.
#
#   scripts/fuzz.sh [--smoke] [TARGET...]     (default: every target)
#
# Targets: gguf, safetensors (format readers), tokenizer_json, chat_template (lib/tokenizer),
# expert_file, json_columns (lib/store), verifier (lib/adapt), request_validation (the
# dispatcher's request checks).
#
# Builds the fuzz targets in the ASan+UBSan configuration scripts/sanitize.sh tests
# (scripts/asan_build.sh: clang, build-asan or $T2_ASAN_BUILD_DIR), seeds each corpus with
# small valid inputs the reference Python packages write (tests/fuzz/make_seeds.py), and runs
# each fuzzer for $FUZZ_SECONDS seconds (default 120; --smoke: 10, for CI; an explicit
# FUZZ_SECONDS wins), as many at once as there are cores ($T2_FUZZ_JOBS to change that).
# Exits non-zero if any fuzzer crashes, fails an invariant or a sanitizer reports; the
# reproducer is saved under <build>/crashes/ (replay: <build>/tests/fuzz/<target>_fuzz <file>).
set -euo pipefail
cd "$(dirname "$0")/.."
ALL_TARGETS=(gguf safetensors tokenizer_json chat_template expert_file json_columns verifier
             request_validation)
default_seconds=120
TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --smoke) default_seconds=10 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *)
      [[ " ${ALL_TARGETS[*]} " == *" $arg "* ]] \
        || { echo "[fuzz] unknown target '$arg' (targets: ${ALL_TARGETS[*]})" >&2; exit 2; }
      TARGETS+=("$arg") ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
FUZZ_SECONDS=${FUZZ_SECONDS:-$default_seconds}
T2_HOME=${T2_HOME:-$HOME/.cache/t2serve}
PY=$T2_HOME/venv/bin/python
[ -x "$PY" ] || { echo "[fuzz] $PY missing: run scripts/setup.sh first" >&2; exit 1; }
BUILD_DIR=${T2_ASAN_BUILD_DIR:-build-asan}
START=$SECONDS

say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }

T2_BUILD_TARGETS="${TARGETS[*]/%/_fuzz}" scripts/asan_build.sh
say "built in $((SECONDS - START))s"

rm -rf "$BUILD_DIR/seeds"
"$PY" tests/fuzz/make_seeds.py --out "$BUILD_DIR/seeds" >/dev/null
mkdir -p "$BUILD_DIR/crashes"

# Leaks count as failures; UBSan findings abort (T2_SANITIZE sets -fno-sanitize-recover).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Runs one fuzzer; its one-line result goes to $BUILD_DIR/<target>.result.
run_target() {
  local target=$1 corpus=$BUILD_DIR/corpus/$1 log=$BUILD_DIR/$1-fuzz.log line
  mkdir -p "$corpus"
  local dict=()
  [ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
  # The first corpus folder receives new inputs; the seeds folder is only read.
  if "$BUILD_DIR/tests/fuzz/${target}_fuzz" "$corpus" "$BUILD_DIR/seeds/$target" \
      -max_total_time="$FUZZ_SECONDS" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
      "${dict[@]}" -artifact_prefix="$BUILD_DIR/crashes/$target-" \
      -print_final_stats=1 >"$log" 2>&1; then
    local execs cov
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    line="$target: clean, ${execs:-?} executions, $cov, corpus $(ls "$corpus" | wc -l) files"
  else
    line="$target: FAILED ($(grep -o "Test unit written to .*" "$log" | head -1 || true))"
    grep -E 'ERROR:|runtime error|SUMMARY|invariant failed|Test unit written' "$log" >&2 || tail -30 "$log" >&2
  fi
  echo "$line" >"$BUILD_DIR/$target.result"
  say "$line"
}

# One fuzzer per core at a time ($T2_FUZZ_JOBS to change it): each is single-threaded.
jobs_max=${T2_FUZZ_JOBS:-$(nproc)}
running=0
for target in "${TARGETS[@]}"; do
  rm -f "$BUILD_DIR/$target.result"
  if [ "$running" -ge "$jobs_max" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  say "$target: ${FUZZ_SECONDS}s (log: $BUILD_DIR/$target-fuzz.log)"
  run_target "$target" &
  running=$((running + 1))
done
wait || true

failed=()
summary=()
for target in "${TARGETS[@]}"; do
  line=$(cat "$BUILD_DIR/$target.result" 2>/dev/null || echo "$target: FAILED (no result)")
  [[ "$line" == "$target: clean"* ]] || failed+=("$target")
  summary+=("$line")
done

say "summary (${FUZZ_SECONDS}s per target, $((SECONDS - START))s in all, build included):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  say "crashes in: ${failed[*]} (reproducers in $BUILD_DIR/crashes/)"
  exit 1
fi
say "all clean"
