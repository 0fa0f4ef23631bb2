# Sourced by scripts/sanitize.sh and scripts/tsan.sh. Every sanitizer report of every process
# a test starts is written under <build>/sanitizer-reports (log_path in the tests' ctest
# environment, top-level CMakeLists.txt): a service's stderr goes to a log file and nobody
# reads its exit status after SIGTERM, so a report there would otherwise pass unseen.
SANITIZER_REPORTS=sanitizer-reports

# Empties the reports folder of the build folder we are in.
reset_sanitizer_reports() {
  rm -rf "$SANITIZER_REPORTS" && mkdir -p "$SANITIZER_REPORTS"
}

# check_sanitizer_reports TAG: prints every report and returns 1 if there is any.
check_sanitizer_reports() {
  [ -z "$(ls -A "$SANITIZER_REPORTS")" ] && return 0
  local report
  for report in "$SANITIZER_REPORTS"/*; do
    echo "[$1] ===== $report"
    cat "$report"
  done
  echo "[$1] FAILED: the sanitizer reports above (in $PWD/$SANITIZER_REPORTS)"
  return 1
}
