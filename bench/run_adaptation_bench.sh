#!/usr/bin/env bash
# Adaptation quality on this machine (issue 12's benchmark; bench/README.md, "Trainer"):
#   1. trains the built-in experts with `t2 up --experts`' recipe, or takes them from
#      $T2_HOME/experts (t2-trainer against a scratch registry: each job judges its expert
#      against the base model on the task's 500 test questions and publishes it only if the
#      gate passes); prints each job's test accuracies with 95% intervals;
#   2. prints the training runs (bench/training_report.py: validation along each run, time);
#   3. runs build/bench/adaptation_bench against the stack: the two-pass pipeline on a mixed
#      held-out set and few-shot CEM on an unseen task.
#   bench/run_adaptation_bench.sh [QUESTIONS_PER_TASK] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/stack_env.sh
N=${1:-100} STEPS=${2:-30}
T2_HOME=${T2_HOME:-$HOME/.cache/t2serve}
registry=$(start registry "$B/services/registry/t2-registry" --root "$work/registry"); wait_serving "$registry"
worker=$(start worker "$B/services/worker/t2-worker" --model "$MODEL" --device "$DEVICE" --registry "$registry" --max-batch-size 32); wait_serving "$worker"
dispatcher=$(start dispatcher "$B/services/dispatcher/t2-dispatcher" --registry "$registry" --worker "$worker"); wait_serving "$dispatcher"
published=()
for task in cls reasoning code math; do  # the routing expert first: the pipeline needs it most
  # The recipe of `t2 up --experts` (services/t2/up_command.cc).
  set +e
  "$B/services/trainer/t2-trainer" --registry "$registry" --insecure-loopback --model "$MODEL" --device "$DEVICE" --task "$task" \
    --work-dir "$T2_HOME/experts" --steps "$STEPS" --batch-size 16 --validation-size 100 --eval-every 10 --lr 2e-3 --reward-baseline mean \
    --report "$work/$task.report.json" > "$work/$task.job.log" 2>&1
  code=$?
  set -e
  case $code in
    0) published+=("$task") ;;
    3) ;;
    *) echo "t2-trainer $task failed ($code):"; tail -n 20 "$work/$task.job.log"; exit 1 ;;
  esac
done
"$T2_HOME/venv/bin/python" - "$work" <<'PY'
import json, math, pathlib, sys
def wilson(p, n, z=1.959963984540054):
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{p:.3f} [{max(0, c - h):.3f}, {min(1, c + h):.3f}]"
print("Each expert against the base model on its task's test split (the publish gate's evaluation)\n")
print("| task | n | base | expert | gain | McNemar p | published | steps (best) | training time |")
print("|---|---|---|---|---|---|---|---|---|")
for task in ("math", "reasoning", "code", "cls"):
    r = json.loads((pathlib.Path(sys.argv[1]) / f"{task}.report.json").read_text())
    g, t = r["gate"], r["training"]
    print(f"| {task} | {g['n']} | {wilson(g['current_accuracy'], g['n'])} | {wilson(g['candidate_accuracy'], g['n'])} "
          f"| {g['candidate_accuracy'] - g['current_accuracy']:+.3f} | {g['p_value']:.3g} | "
          f"{r.get('expert', 'no')} | {t['steps']} ({t['best_step']}) | {t['train_seconds'] / 60:.0f} min |")
print("\n(cls: its test split is the routing accuracy of the label-scoring first pass, base model vs the cls expert.)\n")
PY
echo
"$T2_HOME/venv/bin/python" bench/training_report.py --work-dir "$T2_HOME/experts"
echo
"$B/bench/adaptation_bench" "$dispatcher" "$N" 16 100 "$(IFS=,; echo "${published[*]:-}")"
