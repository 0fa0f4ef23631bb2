#!/usr/bin/env bash
# Configures and builds t2serve into ./build (or $T2_BUILD_DIR) with the Python environment
# that scripts/setup.sh made. Extra arguments go to CMake (e.g. -DT2_SANITIZE=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
T2_HOME=${T2_HOME:-$HOME/.cache/t2serve}
PY=$T2_HOME/venv/bin/python
[ -x "$PY" ] || { echo "[build] $PY missing: run scripts/setup.sh first" >&2; exit 1; }
BUILD_DIR=${T2_BUILD_DIR:-build}
source scripts/ccache_env.sh
TORCH_PREFIX=$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${T2_BUILD_TYPE:-RelWithDebInfo} \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DT2_PYTHON="$PY" \
  -DT2_DEPLOY_PYTHON="$T2_HOME/deploy-venv/bin/python" ${CCACHE_LAUNCHER[@]+"${CCACHE_LAUNCHER[@]}"} "$@"
# T2_BUILD_TARGETS: only these targets (space-separated); all by default.
TARGETS=()
for t in ${T2_BUILD_TARGETS:-}; do TARGETS+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "${T2_JOBS:-$(nproc)}" ${TARGETS[@]+"${TARGETS[@]}"}
