#!/usr/bin/env bash
# Starts a stack for bench/load_bench.cc on free loopback ports — registry, one worker (small
# batch and queue, so that a few requests per second fill it), a dispatcher — runs the load
# benchmark with this script's arguments, and stops everything.
#   bench/run_load_bench.sh [load_bench options: --rates 0.5,1,2 --seconds 30 ...]
#   T2_WORKER_ARGS: the worker's flags after --model and --registry
#                   (default "--max-batch-size 4 --max-queue 8")
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/stack_env.sh
registry=$(start registry "$B/services/registry/t2-registry" --root "$work/registry"); wait_serving "$registry"
worker=$(start worker "$B/services/worker/t2-worker" --model "$MODEL" --device "$DEVICE" --registry "$registry" ${T2_WORKER_ARGS:---max-batch-size 4 --max-queue 8}); wait_serving "$worker"
dispatcher=$(start dispatcher "$B/services/dispatcher/t2-dispatcher" --registry "$registry" --worker "$worker"); wait_serving "$dispatcher"
"$B/bench/load_bench" "$dispatcher" "$@"
