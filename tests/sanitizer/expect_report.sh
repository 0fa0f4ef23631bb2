#!/usr/bin/env bash
# expect_report.sh BINARY CASE PATTERN...: passes only if BINARY CASE exits non-zero and its
# output matches every PATTERN (grep regular expressions: the sanitizer's report). A single
# PATTERN "" (or none) means: must exit 0 cleanly.
set -u
binary=$1 case=$2
shift 2
out=$("$binary" "$case" 2>&1); rc=$?
if [ $# -eq 0 ] || { [ $# -eq 1 ] && [ -z "$1" ]; }; then
  [ $rc -eq 0 ] || { echo "$out"; echo "expected a clean run, got exit $rc"; exit 1; }
  exit 0
fi
[ $rc -ne 0 ] || { echo "$out"; echo "expected a non-zero exit for '$case'"; exit 1; }
for pattern in "$@"; do
  grep -q -- "$pattern" <<<"$out" || { echo "$out"; echo "expected '$pattern' in the output"; exit 1; }
done
echo "'$case' reported and failed (exit $rc) as it should"
