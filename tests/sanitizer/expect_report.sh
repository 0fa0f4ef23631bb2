#!/usr/bin/env bash
# expect_report.sh BINARY CASE PATTERN: passes only if BINARY CASE exits non-zero and its
# output contains PATTERN (the sanitizer's report). PATTERN "" means: must exit 0 cleanly.
set -u
out=$("$1" "$2" 2>&1); rc=$?
if [ -z "$3" ]; then
  [ $rc -eq 0 ] || { echo "$out"; echo "expected a clean run, got exit $rc"; exit 1; }
  exit 0
fi
[ $rc -ne 0 ] || { echo "$out"; echo "expected a non-zero exit for '$2'"; exit 1; }
grep -q -- "$3" <<<"$out" || { echo "$out"; echo "expected '$3' in the output"; exit 1; }
echo "'$2' reported and failed (exit $rc) as it should"
