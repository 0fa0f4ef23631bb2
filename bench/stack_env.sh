# Sourced by the bench/run_*_bench.sh scripts (from the repository root, under set -euo pipefail):
# a scratch folder, starting services on free loopback ports, waiting for their health, and
# stopping them all and removing the folder on exit.
#   B       the build folder ($T2_BUILD_DIR, default build)
#   MODEL   what the worker serves ($T2_MODEL: a .gguf, an HF folder or "default")
#   DEVICE  the worker's --device ($T2_DEVICE: auto, cpu or cuda; default auto)
#   work    the scratch folder: each service's port file and log
B=${T2_BUILD_DIR:-build}
MODEL=${T2_MODEL:-default}
DEVICE=${T2_DEVICE:-auto}
work=$(mktemp -d)
# start() runs inside $(...), a subshell, so each service's pid goes to a file, not a variable.
cleanup() {
  local f p
  for f in "$work"/*.pid; do
    [ -e "$f" ] || continue
    p=$(cat "$f")
    kill "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null; do sleep 0.1; done  # a worker drains before it exits
  done
  rm -rf "$work"
}
trap cleanup EXIT
start() {  # name binary args... ; prints the address it bound ($work/name.log has its output)
  local name=$1; shift
  "$@" --listen 127.0.0.1:0 --port-file "$work/$name.port" --insecure-loopback > "$work/$name.log" 2>&1 &
  echo $! > "$work/$name.pid"
  for _ in $(seq 600); do [ -s "$work/$name.port" ] && break; sleep 0.2; done
  cat "$work/$name.port"
}
wait_serving() {  # address: blocks until it is SERVING (a worker loads its model first); fails
                  # at once, showing its log, if the service exits instead
  local f name=""
  for f in "$work"/*.port; do [ "$(cat "$f")" = "$1" ] && name=$(basename "$f" .port); done
  for _ in $(seq 300); do
    "$B/services/t2/t2" health --server "$1" --wait-s 2 --insecure-loopback > /dev/null 2>&1 && return 0
    if [ -n "$name" ] && ! kill -0 "$(cat "$work/$name.pid")" 2>/dev/null; then
      echo "$name exited before serving; the end of its log:" >&2
      tail -n 20 "$work/$name.log" >&2
      return 1
    fi
  done
  echo "$1 is not SERVING after 600 s" >&2
  return 1
}

# registry: writes two constant experts (singular values scaled by 0.9 and 1.1, no
# renormalisation) to $work/e0.9.safetensors and $work/e1.1.safetensors and publishes them as
# scaled-down@1 and scaled-up@1.
publish_scaled_experts() {
  for v in 0.9 1.1; do
    "$B/services/t2/t2" expert constant --model "$MODEL" --device "$DEVICE" --value "$v" --normalization none \
      --out "$work/e$v.safetensors" > /dev/null
  done
  "$B/services/t2/t2" experts publish --registry "$1" --insecure-loopback --name scaled-down --version 1 "$work/e0.9.safetensors" > /dev/null
  "$B/services/t2/t2" experts publish --registry "$1" --insecure-loopback --name scaled-up --version 1 "$work/e1.1.safetensors" > /dev/null
}
