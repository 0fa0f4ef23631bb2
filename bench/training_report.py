"""The built-in experts' training runs as tables: validation accuracy along the run, the time
and the token rate, and where a step's time goes. Reads each task's newest run folder under the
trainer's work directory (the one `t2 up --experts` and bench/run_adaptation_bench.sh use):
its metrics.jsonl (one line per step; step 0 is the base model's validation) and report.json.

    python bench/training_report.py [--work-dir $T2_HOME/experts] [--tasks cls,reasoning,code,math]
"""
import argparse
import json
import os
import pathlib


def newest_run(work_dir: pathlib.Path, task: str):
    runs = [d for d in work_dir.glob(f"{task}-*") if (d / "metrics.jsonl").exists()]
    return max(runs, key=lambda d: (d / "metrics.jsonl").stat().st_mtime) if runs else None


def main():
    home = pathlib.Path(os.environ.get("T2_HOME", pathlib.Path.home() / ".cache" / "t2serve"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--work-dir", type=pathlib.Path, default=home / "experts")
    parser.add_argument("--tasks", default="cls,reasoning,code,math")
    args = parser.parse_args()
    rows = []
    for task in args.tasks.split(","):
        run = newest_run(args.work_dir, task)
        if run is None:
            print(f"({task}: no run under {args.work_dir})")
            continue
        steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        report = json.loads((run / "report.json").read_text()) if (run / "report.json").exists() else {}
        rows.append((task, run, steps, report))

    print("Validation accuracy along each run (step 0: the base model), best step, time and token rate\n")
    evaluated = sorted({s["step"] for _, _, steps, _ in rows for s in steps if "validation_accuracy" in s
                        and (s["step"] == 0 or s.get("eval_s", 0) > 0)})
    print("| task | " + " | ".join(f"step {k}" for k in evaluated) + " | best (step) | training time | tokens/s trained |")
    print("|---|" + "---|" * (len(evaluated) + 3))
    for task, run, steps, report in rows:
        val = {s["step"]: s["validation_accuracy"] for s in steps if s["step"] == 0 or s.get("eval_s", 0) > 0}
        trained = [s for s in steps if s["step"] > 0]
        seconds = sum(s["seconds"] for s in steps)
        tokens = sum(s["tokens"] for s in trained)
        train_s = sum(s["seconds"] - s.get("eval_s", 0) for s in trained)
        best = max(val.items(), key=lambda kv: (kv[1], -kv[0])) if val else (0, 0)
        print(f"| {task} | " + " | ".join(f"{val[k]:.2f}" if k in val else "" for k in evaluated) +
              f" | {best[1]:.2f} ({best[0]}) | {seconds / 60:.1f} min | {tokens / train_s if train_s else 0:.0f} |")

    print("\nWhere a training step's time goes (mean over the run's steps, seconds)\n")
    print("| task | rollout | compose | forward | backward | update | step | validation pass |")
    print("|---|---|---|---|---|---|---|---|")
    for task, run, steps, report in rows:
        trained = [s for s in steps if s["step"] > 0]
        if not trained:
            continue
        mean = lambda k: sum(s[k] for s in trained) / len(trained)
        evals = [s["eval_s"] for s in steps if s.get("eval_s", 0) > 0]
        print(f"| {task} | {mean('rollout_s'):.1f} | {mean('compose_s'):.2f} | {mean('forward_s'):.1f} | "
              f"{mean('backward_s'):.1f} | {mean('update_s'):.3f} | {mean('seconds') - sum(evals) / len(trained):.1f} | "
              f"{sum(evals) / len(evals) if evals else 0:.0f} |")


if __name__ == "__main__":
    main()
