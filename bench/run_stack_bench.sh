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
# core). T2_WORKER_ARGS: extra worker flags.
threads=()
if [ -n "${T2_THREADS:-}" ]; then threads=(--threads "$T2_THREADS"); export T2_ENGINE_THREADS=$T2_THREADS; fi
worker=$(start worker "$B/services/worker/t2-worker" --model default --registry "$registry" --max-batch-size 8 "${threads[@]}" ${T2_WORKER_ARGS:-}); wait_serving "$worker"
dispatcher=$(start dispatcher "$B/services/dispatcher/t2-dispatcher" --registry "$registry" --worker "$worker"); wait_serving "$dispatcher"
sequential=$(start sequential "$B/services/dispatcher/t2-dispatcher" --registry "$registry" --worker "$worker" --cem-sequential); wait_serving "$sequential"
for v in 0.9 1.1; do
  "$B/services/t2/t2" expert constant --value "$v" --normalization none --out "$work/e$v.safetensors" > /dev/null
done
"$PY" - "$registry" "$work" <<'PYEOF'
import hashlib, os, sys, tempfile, grpc
from grpc_tools import protoc
gen = tempfile.mkdtemp()
protoc.main(["protoc", "-Iproto", f"--python_out={gen}", f"--grpc_python_out={gen}", "t2/v1/common.proto", "t2/v1/registry.proto"])
sys.path.insert(0, gen)
from t2.v1 import registry_pb2 as r, registry_pb2_grpc as rg
stub = rg.RegistryStub(grpc.insecure_channel(sys.argv[1]))
for name, v in (("scaled-down", "0.9"), ("scaled-up", "1.1")):
    blob = open(os.path.join(sys.argv[2], f"e{v}.safetensors"), "rb").read()
    parts = [r.PublishExpertRequest(header=r.PublishExpertRequest.Header(name=name, version=1, size_bytes=len(blob),
                                                                        sha256=hashlib.sha256(blob).hexdigest()))]
    parts += [r.PublishExpertRequest(chunk=blob[i:i + (1 << 20)]) for i in range(0, len(blob), 1 << 20)]
    stub.PublishExpert(iter(parts), timeout=60)
PYEOF
"$B/bench/stack_bench" "$dispatcher" "${1:-16}" "${2:-128}" "$sequential" scaled-down,scaled-up
