# Sourced by the bench/run_*_bench.sh scripts (from the repository root, under set -euo pipefail):
# a scratch folder, starting services on free loopback ports, waiting for their health, and
# stopping them all and removing the folder on exit.
#   B     the build folder ($T2_BUILD_DIR, default build)
#   PY    the project's Python ($T2_HOME/venv), for the health checks
#   work  the scratch folder: each service's port file and log
B=${T2_BUILD_DIR:-build}
PY=${T2_HOME:-$HOME/.cache/t2serve}/venv/bin/python
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
start() {  # name binary args... ; prints the address it bound ($work/name.log has its output)
  local name=$1; shift
  "$@" --listen 127.0.0.1:0 --port-file "$work/$name.port" > "$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do [ -s "$work/$name.port" ] && break; sleep 0.2; done
  cat "$work/$name.port"
}
wait_serving() {  # address
  "$PY" - "$1" <<'PYEOF'
import sys, time, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(sys.argv[1]))
for _ in range(1200):
    try:
        if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == 1: sys.exit(0)
    except grpc.RpcError: pass
    time.sleep(0.25)
sys.exit(1)
PYEOF
}
