#!/usr/bin/env bash
# Times .ci/run the way the README states it: a fresh clone of this checkout's HEAD in a
# temporary folder, each step timed on its own, with the share of the machine's cores that was
# busy meanwhile (so a figure taken while something else ran shows it). $T2_HOME (Python
# environment, model, ccache, fixture cache, TSan-built gRPC) is used as it is; for the cold
# figure, point ccache at an empty folder: CCACHE_DIR=$(mktemp -d) scripts/time_ci.sh
#
#   scripts/time_ci.sh [CLONE_DIR]      (default: a new folder under /tmp, removed afterwards)
#
# Prints one line per step and a markdown table row; step logs go to CLONE_DIR/ci-logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
clone=${1:-$(mktemp -d /tmp/t2-ci-XXXXXX)}
[ $# -ge 1 ] || trap 'rm -rf "$clone"' EXIT
rm -rf "$clone"
git clone -q . "$clone" || exit 1
cd "$clone"
mkdir -p ci-logs
busy_idle() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
row="| $(git log -1 --format=%h) |"
total=0
for step in scripts/setup.sh scripts/test.sh scripts/sanitize.sh scripts/tsan.sh "scripts/fuzz.sh --smoke"; do
  start=$SECONDS
  read -r b0 i0 < <(busy_idle)
  $step >"ci-logs/$(basename "${step%% *}" .sh).log" 2>&1  # word-split on purpose: "fuzz.sh --smoke"
  rc=$?
  read -r b1 i1 < <(busy_idle)
  seconds=$((SECONDS - start))
  total=$((total + seconds))
  log="ci-logs/$(basename "${step%% *}" .sh).log"
  ctest_s=$(grep -o 'Total Test time (real) = *[0-9.]*' "$log" | grep -o '[0-9.]*$' | tail -n 1)
  echo "$step: exit $rc, ${seconds} s${ctest_s:+ (ctest ${ctest_s} s)}, cores $((100 * (b1 - b0) / (b1 - b0 + i1 - i0 + 1)))% busy"
  row="$row ${seconds} s${ctest_s:+ (${ctest_s%.*} s)} |"
  if [ $rc -ne 0 ]; then
    echo "failed; its log: $clone/$log (kept)"
    trap - EXIT
    exit $rc
  fi
done
echo "total: ${total} s"
echo "$row **${total} s** |"
