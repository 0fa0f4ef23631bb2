"""Training curve of an SVF run: reward and validation accuracy against the step.

Usage: python plot_training.py METRICS_JSONL OUT_PNG [TITLE]
Embedded in the t2 binaries (plot_script.h) and run with the project's Python environment.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    metrics, out = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "SVF training"
    rows = [json.loads(line) for line in open(metrics, encoding="utf-8") if line.strip()]
    train = [r for r in rows if r["step"] > 0]
    val = [r for r in rows if "validation_accuracy" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot([r["step"] for r in train], [r["reward_mean"] for r in train], color="tab:blue", alpha=0.5,
            label="reward (batch mean)")
    ax.plot([r["step"] for r in val], [2 * r["validation_accuracy"] - 1 for r in val], color="tab:orange",
            marker="o", label="validation accuracy (as reward: 2·acc − 1)")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_ylim(-1.05, 1.05)
    right = ax.secondary_yaxis("right", functions=(lambda r: (r + 1) / 2, lambda a: 2 * a - 1))
    right.set_ylabel("validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out} ({len(train)} steps, {len(val)} validations)")


if __name__ == "__main__":
    main()
