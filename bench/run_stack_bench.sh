#!/usr/bin/env bash
# Starts a stack for bench/stack_bench.cc on free loopback ports — registry, one worker, a
# dispatcher and a second dispatcher that evaluates CEM candidates one at a time — publishes
# two experts (singular values scaled by 0.9 and 1.1) for the Adapt comparison, runs the
# benchmark, and stops everything.
#   bench/run_stack_bench.sh [requests] [max_new_tokens]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/stack_env.sh
registry=$(start registry "$B/services/registry/t2-registry" --root "$work/registry"); wait_serving "$registry"
# T2_THREADS: torch threads of both the worker and the in-process engine (default: one per
# core). T2_MODEL, T2_DEVICE (bench/stack_env.sh): the model and device of both.
# T2_WORKER_ARGS: extra worker flags.
export T2_BENCH_MODEL=$MODEL T2_BENCH_DEVICE=$DEVICE
threads=()
if [ -n "${T2_THREADS:-}" ]; then threads=(--threads "$T2_THREADS"); export T2_ENGINE_THREADS=$T2_THREADS; fi
worker=$(start worker "$B/services/worker/t2-worker" --model "$MODEL" --device "$DEVICE" --registry "$registry" --max-batch-size 8 "${threads[@]}" ${T2_WORKER_ARGS:-}); wait_serving "$worker"
dispatcher=$(start dispatcher "$B/services/dispatcher/t2-dispatcher" --registry "$registry" --worker "$worker"); wait_serving "$dispatcher"
sequential=$(start sequential "$B/services/dispatcher/t2-dispatcher" --registry "$registry" --worker "$worker" --cem-sequential); wait_serving "$sequential"
publish_scaled_experts "$registry"
"$B/bench/stack_bench" "$dispatcher" "${1:-16}" "${2:-128}" "$sequential" scaled-down,scaled-up
