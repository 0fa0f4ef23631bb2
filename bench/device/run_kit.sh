#!/usr/bin/env bash
# Runs t2serve's GPU checks from the tarball bench/device/make_kit.sh packed, on a machine with
# an NVIDIA GPU, CUDA and a Python that has torch and transformers (no network, no build):
#   1. the kit's libraries resolve (ldd) against the machine's torch and CUDA;
#   2. a checkpoint with the default model's shapes and random weights (random_model.py);
#   3. the GPU unit tests (merged W' applied and restored on the GPU, the SVD on the GPU
#      matching the CPU's) — they skip without a GPU, so a skip fails this step;
#   4. the same greedy answer on the GPU as on the CPU (float32), through t2 generate;
#   5. decode throughput on the GPU at batch 1 and 8 (bench/generate_bench);
#   6. the stack benchmark on the GPU (bench/run_stack_bench.sh): services overhead, first
#      pass share, and CEM Adapt with batched against one-candidate-at-a-time evaluation;
#   train (only when T2_KIT_STEPS names it: it needs a call of its own): one SVF training step
#      in t2 and in PyTorch (bench/run_train_step_bench.sh) on a random model with Llama-3-8B
#      shapes (TRAIN_LAYERS of its 32 layers, default 8), bf16.
# Each step's output goes to $OUT/<step>.log (at most 8 files come back from the device
# tool), and a summary with each step's exit code to $OUT/summary.txt.
#   bench/device/run_kit.sh [build-device/kit.tar.xz]
# T2_DEVICE=cpu runs the same steps on a machine without a GPU (a dry run of the kit; step 3
# then reports the skips as a failure). T2_TORCH_SITE: the site-packages folder holding
# torch/ and nvidia/ (default: python3's). REQUESTS: stack benchmark requests (default 16).
# T2_KIT_STEPS: the steps to run, by name (default "env model gpu_tests answer decode stack").
set -uo pipefail
cd "$(dirname "$0")/../.."
TARBALL=${1:-build-device/kit.tar.xz}
OUT=${OUT:-$PWD/device-out}
DEVICE=${T2_DEVICE:-cuda}
PY=${T2_KIT_PYTHON:-python3}
mkdir -p "$OUT"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
KIT=$scratch/kit
mkdir -p "$KIT"
tar -C "$KIT" -xJf "$TARBALL" || { echo "cannot unpack $TARBALL" | tee "$OUT/summary.txt"; exit 1; }

site=${T2_TORCH_SITE:-$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')}
libs="$KIT/lib:$site/torch/lib"
for d in "$site"/nvidia/*/lib "$site"/nvidia/*/lib64; do [ -d "$d" ] && libs="$libs:$d"; done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export T2_HOME=$scratch/home

summary=$OUT/summary.txt
: > "$summary"
step() {  # name seconds command...: runs it with a time limit, logs it, records its exit code
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  echo "== $name"
  # Through bash -c so that the step may be one of the functions below (exported).
  timeout "$limit" bash -c '"$@"' "$name" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%-10s rc=%-3s %4d s\n' "$name" "$rc" "$(( $(date +%s) - start ))" | tee -a "$summary"
  tail -n 40 "$OUT/$name.log"
  return $rc
}

MODEL=$scratch/model  # random_model.py writes it
env_check() {
  nvidia-smi 2>&1 || echo "(no nvidia-smi)"
  env -u LD_LIBRARY_PATH "$PY" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())'
  local bad=0 b
  for b in "$KIT"/services/*/* "$KIT"/bench/* "$KIT"/tests/*/*; do
    if ldd "$b" | grep "not found"; then echo "  ^ $b"; bad=1; fi
  done
  return $bad
}
gpu_tests() {
  local rc=0 t
  for t in svf_compose_test svf_decomposition_test; do
    T2_FIXTURES=$KIT/fixtures "$KIT/tests/svf/$t" --gtest_filter='*Cuda*' | tee "$scratch/$t.txt" || rc=1
    if grep -q "SKIPPED" "$scratch/$t.txt"; then echo "$t: skipped: no GPU test ran"; rc=1; fi
  done
  return $rc
}
same_answer() {
  local prompt="Explain what a singular value is, in two sentences."
  "$KIT/services/t2/t2" generate --model "$MODEL" --device cpu --dtype float32 --prompt "$prompt" \
    --max-new-tokens 24 > "$scratch/cpu.txt" || return 1
  "$KIT/services/t2/t2" generate --model "$MODEL" --device "$DEVICE" --dtype float32 --prompt "$prompt" \
    --max-new-tokens 24 > "$scratch/device.txt" || return 1
  echo "cpu:    $(cat "$scratch/cpu.txt")"
  echo "$DEVICE: $(cat "$scratch/device.txt")"
  cmp -s "$scratch/cpu.txt" "$scratch/device.txt" && echo "same greedy answer" || { echo "answers differ"; return 1; }
}
train_step() {
  # Python's torch finds its own libraries; LD_LIBRARY_PATH is for the kit's binaries.
  printf '#!/bin/sh\nexec env -u LD_LIBRARY_PATH %s "$@"\n' "$PY" > "$scratch/python"
  chmod +x "$scratch/python"
  "$scratch/python" bench/device/random_model.py --like "$KIT/model" --out "$scratch/model-8b" \
    --shape llama3-8b --layers "${TRAIN_LAYERS:-8}" || return 1
  T2_BUILD_DIR="$KIT" T2_MODEL="$scratch/model-8b" T2_DEVICE="$DEVICE" T2_PYTHON="$scratch/python" \
    bench/run_train_step_bench.sh math 16 4 96 3
}
export KIT MODEL DEVICE PY scratch
export -f env_check gpu_tests same_answer train_step

steps=" ${T2_KIT_STEPS:-env model gpu_tests answer decode stack} "
want() { [[ "$steps" == *" $1 "* ]]; }
want env && step env 60 env_check
if want model; then
  step model 300 env -u LD_LIBRARY_PATH "$PY" bench/device/random_model.py --like "$KIT/model" --out "$MODEL" || exit 1
fi
want gpu_tests && step gpu_tests 600 gpu_tests
want answer && step answer 600 same_answer
want decode && step decode 600 "$KIT/bench/generate_bench" "$MODEL" 64 0 "$DEVICE"
want stack && step stack 1200 env T2_BUILD_DIR="$KIT" T2_MODEL="$MODEL" T2_DEVICE="$DEVICE" bench/run_stack_bench.sh "${REQUESTS:-16}" 128
want train && step train 580 train_step
echo "== summary ($OUT)"
cat "$summary"
! grep -v "rc=0 " "$summary" > /dev/null
