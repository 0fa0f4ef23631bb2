"""deploy/prometheus: promtool validates the alert rules and runs their unit tests, and every
series the rules or their tests name must be one t2serve exports under that name — a rule on
a misspelt series (or one missing its _total) is valid PromQL that can never fire.

What t2serve exports is README.md's metrics tables; the tests keep those tables true against
real scrapes (python_client_test: every scraped family in a real Prometheus; trainer_job_test:
the trainer's families in a real Pushgateway).

usage: check_prometheus_rules.py --deploy DIR --readme README.md
"""
import argparse
import pathlib
import re
import subprocess
import sys

import yaml

# Series Prometheus makes itself.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# PromQL words that look like series names in an expression.
PROMQL_WORDS = {"sum", "by", "without", "rate", "increase", "irate", "time", "on", "unless", "or", "and",
                "ignoring", "group_left", "group_right", "histogram_quantile", "max", "min", "avg", "count",
                "absent", "offset", "bool", "le", "topk", "bottomk", "clamp_min", "clamp_max", "vector",
                "scalar", "delta", "deriv", "changes", "resets", "label_replace", "avg_over_time",
                "max_over_time", "min_over_time", "sum_over_time", "count_over_time", "quantile", "humanize"}


def exported(readme: str) -> set:
    names = set()
    for name in re.findall(r"^\| `([a-z][a-z0-9_:]*)(?:\{[^`]*\})?` \|", pathlib.Path(readme).read_text(), re.M):
        names.add(name)
    # A histogram family's series.
    return names | {f"{n}{s}" for n in names for s in ("_bucket", "_count", "_sum")}


def series_in(expr: str) -> set:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)   # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)                # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)               # ranges
    expr = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", w)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deploy", required=True, type=pathlib.Path)
    ap.add_argument("--readme", required=True)
    args = ap.parse_args()
    prom = (args.deploy / "prometheus").resolve()
    failures = []
    rule_files = sorted((prom / "rules").glob("*.yml"))
    test_files = sorted((prom / "tests").glob("*.yml"))
    for command in (["promtool", "check", "rules", *map(str, rule_files)],
                    ["promtool", "test", "rules", *map(str, test_files)]):
        p = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=prom)
        print(p.stdout + p.stderr)
        if p.returncode != 0:
            failures.append(" ".join(command[:3]) + " failed")

    known = exported(args.readme) | PROMETHEUS_SERIES
    for f in rule_files:
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                for name in sorted(series_in(rule["expr"]) - known):
                    failures.append(f"{f.name}: {rule.get('alert', rule.get('record'))} names '{name}', "
                                    "which t2serve does not export (README.md, Metrics)")
    for f in test_files:
        for test in yaml.safe_load(f.read_text())["tests"]:
            for s in test.get("input_series", []):
                name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s["series"]).group(0)
                if name not in known:
                    failures.append(f"{f.name}: input series '{name}' is not exported by t2serve")
    if not rule_files or not test_files:
        failures.append(f"no rules or no rule tests under {prom}")
    for f in failures:
        print("FAIL:", f)
    print(f"{len(rule_files)} rule file(s), {len(test_files)} test file(s), {len(known)} known series names")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
