#!/usr/bin/env bash
# Soak run (issue 14 item 6): starts registry, one worker and a dispatcher on free loopback
# ports, publishes two experts (singular values scaled by 0.9 and 1.1), runs
# bench/soak_driver.py's mixed traffic for the given minutes while sampling each service's
# RSS, open fds and threads, prints the growth table and PASS/FAIL, and stops everything.
#   bench/run_soak.sh [minutes]          (default 10)
#   T2_SOAK_ARGS: more soak_driver.py flags (--clients 4 --sample-s 10 --churn-every-s 5
#                 --adapt-every-s 45 --rss-limit-mb 50 --fd-noise 2 --json FILE)
#   T2_SOAK_LOGS: a folder to copy the services' logs into at the end
#   T2_WORKER_ARGS: the worker's flags after --model and --registry
#                   (default "--max-batch-size 8 --max-loaded-experts 8": the adapter cache
#                   fills, and then evicts, within the warm-up)
#   T2_MODEL, T2_DEVICE, T2_BUILD_DIR: see bench/stack_env.sh
#   T2_PYTHON: the Python with grpcio and grpcio-tools (default ~/.cache/t2serve/venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
python=${T2_PYTHON:-$HOME/.cache/t2serve/venv/bin/python}
source bench/stack_env.sh
keep_logs() {
  if [ -n "${T2_SOAK_LOGS:-}" ]; then mkdir -p "$T2_SOAK_LOGS" && cp "$work"/*.log "$T2_SOAK_LOGS"/ 2>/dev/null || true; fi
  cleanup
}
trap keep_logs EXIT
# Each service also serves /metrics: the driver reads its malloc figures at the idle samples.
metrics() { echo --metrics-listen 127.0.0.1:0 --metrics-port-file "$work/$1.metrics"; }
registry=$(start registry "$B/services/registry/t2-registry" --root "$work/registry" $(metrics registry))
wait_serving "$registry"
worker=$(start worker "$B/services/worker/t2-worker" --model "$MODEL" --device "$DEVICE" --registry "$registry" \
  --expert-dir "$work/worker-experts" $(metrics worker) \
  ${T2_WORKER_ARGS:---max-batch-size 8 --max-loaded-experts 8}); wait_serving "$worker"
dispatcher=$(start dispatcher "$B/services/dispatcher/t2-dispatcher" --registry "$registry" --worker "$worker" \
  $(metrics dispatcher)); wait_serving "$dispatcher"
publish_scaled_experts "$registry"
echo "stack: registry $registry, worker $worker, dispatcher $dispatcher; model $MODEL, device $DEVICE; $minutes min"
"$python" bench/soak_driver.py --dispatcher "$dispatcher" --registry "$registry" --worker "$worker" --minutes "$minutes" \
  --pid registry="$(cat "$work/registry.pid")" --pid worker="$(cat "$work/worker.pid")" \
  --pid dispatcher="$(cat "$work/dispatcher.pid")" \
  --metrics registry="$(cat "$work/registry.metrics")" --metrics worker="$(cat "$work/worker.metrics")" \
  --metrics dispatcher="$(cat "$work/dispatcher.metrics")" \
  --blob "$work/e0.9.safetensors" --blob "$work/e1.1.safetensors" ${T2_SOAK_ARGS:-}
