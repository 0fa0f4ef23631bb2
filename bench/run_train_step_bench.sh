#!/usr/bin/env bash
# One SVF training step in t2 (train_step_bench) and in PyTorch (train_step_reference.py), same
# model, batch and micro-batches, one after the other on this machine; prints both tables and
# the ratio of the mean step times (the first step of each is a warm-up and left out).
#   bench/run_train_step_bench.sh [TASK] [BATCH] [MICRO_BATCH] [MAX_NEW_TOKENS] [REPEATS]
# T2_MODEL: a .gguf or an HF folder (default: the default model); T2_DEVICE: cpu (default) or
# cuda; T2_DTYPE: float32, bfloat16 or float16 (default: float32 on the CPU, bfloat16 on a GPU);
# T2_BUILD_DIR: where train_step_bench is (default build); T2_PYTHON: the Python with torch and
# transformers (default the project's environment).
set -euo pipefail
cd "$(dirname "$0")/.."
T2_HOME=${T2_HOME:-$HOME/.cache/t2serve}
BUILD=${T2_BUILD_DIR:-build}
TASK=${1:-math} BATCH=${2:-16} MICRO=${3:-4} MAX_NEW=${4:-96} REPEATS=${5:-3}
MODEL=${T2_MODEL:-$T2_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf}
DEVICE=${T2_DEVICE:-cpu}
DTYPE=${T2_DTYPE:-$([ "$DEVICE" = cpu ] && echo float32 || echo bfloat16)}
PY=${T2_PYTHON:-$T2_HOME/venv/bin/python}
out=$(mktemp -d)
echo "== t2 (C++, LibTorch): $TASK, batch $BATCH, micro-batch $MICRO, max_new_tokens $MAX_NEW, $DEVICE $DTYPE"
"$BUILD/bench/train_step_bench" "$MODEL" "$TASK" "$BATCH" "$MICRO" "$MAX_NEW" "$REPEATS" "$out/t2.json" 0 "$DEVICE" "$DTYPE"
echo "== PyTorch + transformers (Python), the same step"
"$PY" bench/train_step_reference.py --model "$MODEL" --batch "$out/t2.json" \
  --repeats "$REPEATS" --out "$out/torch.json" --device "$DEVICE" --dtype "$DTYPE"
"$PY" - "$out/t2.json" "$out/torch.json" <<'PY'
import json, sys
t2, torch = (json.load(open(f))["steps"][1:] for f in sys.argv[1:3])
mean = lambda steps, k: sum(s[k] for s in steps) / len(steps)
print("\nmean over steps 2..N (seconds)")
print(f"{'phase':10} {'t2':>8} {'PyTorch':>8} {'speedup':>8}")
for k in ("rollout_s", "compose_s", "forward_s", "backward_s", "update_s", "total_s"):
    a, b = mean(t2, k), mean(torch, k)
    print(f"{k[:-2]:10} {a:8.2f} {b:8.2f} {b / a if a > 0 else float('nan'):7.2f}x")
print(f"generated tokens per step: t2 {mean(t2, 'generated_tokens'):.0f}, PyTorch {mean(torch, 'generated_tokens'):.0f}")
PY
rm -rf "$out"
