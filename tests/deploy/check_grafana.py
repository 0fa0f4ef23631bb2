"""deploy/grafana and the Prometheus scrape configs, checked without running Grafana:

- the dashboard JSON files are what deploy/grafana/make_dashboards.py writes (edit the
  generator, not the JSON);
- each dashboard has Grafana's essentials: uid, title, schemaVersion >= 39, panels with unique
  ids and a gridPos inside the 24-column grid, data panels of a known type with targets whose
  `expr` is set and whose data source is the `datasource` variable (type datasource, query
  prometheus); `job`/`instance`/`adapter` variables are `label_values(...)` queries;
- the provisioning YAMLs are well-formed and point at folders that exist here;
- every series a panel or a variable queries is one t2serve exports under that name (README.md's
  metrics tables) or `up`: a misspelt name is valid PromQL that draws an empty panel forever;
- `promtool check config` accepts deploy/prometheus/prometheus.yml and prometheus-k8s.yml. The
  Debian promtool is built without Kubernetes service discovery, so when it refuses
  `kubernetes_sd_configs` the k8s file is checked with that block stubbed out, and its
  relabelling is run here on the pods k8s/base declares: exactly the t2 services' metrics ports
  become targets, with job = app.kubernetes.io/name and instance = the pod's name.

usage: check_grafana.py --deploy DIR --readme README.md [--k8s DIR]
"""
import argparse
import importlib.util
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_prometheus_rules import PROMQL_WORDS, exported, series_in  # noqa: E402  (same approach as the rules)

MORE_PROMQL_WORDS = {"label_values", "group", "abs", "ceil", "floor", "round", "sort", "sort_desc", "sqrt",
                     "exp", "ln", "log2", "log10", "count_values", "stddev", "stdvar", "timestamp", "last_over_time",
                     "histogram_count", "histogram_sum", "label_join", "predict_linear", "day_of_week", "hour"}
PROMETHEUS_SERIES = {"up"}
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "heatmap", "bargauge", "text", "row"}
# Where provisioning/dashboards/t2.yaml expects Grafana to see deploy/grafana/dashboards (its
# comment shows the mount).
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards/t2serve"
T2_JOBS = {"t2-dispatcher", "t2-worker", "t2-registry"}
METRICS_PORT = 9090  # every pod's port named `metrics` (README.md, "Container images")


def load_generator(grafana: pathlib.Path):
    spec = importlib.util.spec_from_file_location("make_dashboards", grafana / "make_dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def label_values_series(query: str) -> set:
    """The series a `label_values(expr, label)` variable query reads (none for label_values(label))."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*", query, re.S)
    if m:
        return series_in(m.group(1)) - MORE_PROMQL_WORDS
    if re.fullmatch(r"\s*label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*", query):
        return set()
    raise ValueError(f"not a label_values query: {query}")


def uses_datasource_variable(ds) -> bool:
    return isinstance(ds, dict) and ds.get("type") == "prometheus" and ds.get("uid") in ("${datasource}", "$datasource")


def check_dashboard(path: pathlib.Path, known: set, failures: list, unknown: dict) -> int:
    try:
        d = json.loads(path.read_text())
    except ValueError as e:
        failures.append(f"{path.name}: not JSON: {e}")
        return 0
    where = path.name
    for key in ("uid", "title"):
        if not isinstance(d.get(key), str) or not d[key]:
            failures.append(f"{where}: no {key}")
    if not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", str(d.get("uid", ""))):
        failures.append(f"{where}: uid '{d.get('uid')}' is not 1-40 of [a-zA-Z0-9_-]")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 39:
        failures.append(f"{where}: schemaVersion {d.get('schemaVersion')} < 39")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        failures.append(f"{where}: no `datasource` variable of type datasource, query prometheus")
    for name in ("job", "instance"):
        if name not in variables:
            failures.append(f"{where}: no `{name}` variable")
    for name, v in variables.items():
        if name == "datasource":
            continue
        if v.get("type") != "query":
            failures.append(f"{where}: variable {name} is of type {v.get('type')}, not query")
            continue
        if not uses_datasource_variable(v.get("datasource")):
            failures.append(f"{where}: variable {name} does not take its data source from $datasource")
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("definition") not in (None, q):
            failures.append(f"{where}: variable {name}: definition and query differ")
        try:
            for s in label_values_series(q or "") - known:
                unknown.setdefault(s, []).append(f"{where}: variable ${name}")
        except ValueError as e:
            failures.append(f"{where}: variable {name}: {e}")
    panels = d.get("panels")
    if not isinstance(panels, list) or not panels:
        failures.append(f"{where}: no panels")
        return 0
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids) or not all(isinstance(i, int) for i in ids):
        failures.append(f"{where}: panel ids are not unique integers: {ids}")
    cells = {}
    queries = 0
    for p in panels:
        pw = f"{where}: panel {p.get('id')} '{p.get('title')}'"
        if not p.get("title"):
            failures.append(f"{pw}: no title")
        if p.get("type") not in PANEL_TYPES:
            failures.append(f"{pw}: type {p.get('type')} is not one of {sorted(PANEL_TYPES)}")
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")) or g["w"] < 1 or g["h"] < 1 \
                or g["x"] < 0 or g["y"] < 0 or g["x"] + g["w"] > 24:
            failures.append(f"{pw}: gridPos {g} is not inside the 24-column grid")
        else:
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    if (x, y) in cells:
                        failures.append(f"{pw}: overlaps panel {cells[(x, y)]}")
                        break
                    cells[(x, y)] = p.get("id")
                else:
                    continue
                break
        if p.get("type") in ("row", "text"):
            if p.get("targets"):
                failures.append(f"{pw}: a {p['type']} with targets")
            continue
        if not uses_datasource_variable(p.get("datasource")):
            failures.append(f"{pw}: data source is not the $datasource variable")
        targets = p.get("targets") or []
        if not targets:
            failures.append(f"{pw}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            failures.append(f"{pw}: refIds not unique: {refs}")
        for t in targets:
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                failures.append(f"{pw}: target {t.get('refId')} has no expr")
                continue
            queries += 1
            if not uses_datasource_variable(t.get("datasource", p.get("datasource"))):
                failures.append(f"{pw}: target {t.get('refId')}: data source is not $datasource")
            if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                failures.append(f"{pw}: unbalanced brackets in {expr}")
            for s in series_in(expr) - MORE_PROMQL_WORDS - known:
                unknown.setdefault(s, []).append(pw)
            for var in re.findall(r"\$\{?(\w+)", expr):
                if var not in variables and not var.startswith("__"):
                    failures.append(f"{pw}: uses ${var}, which the dashboard does not define")
    return queries


def check_provisioning(grafana: pathlib.Path, failures: list):
    dash_file = grafana / "provisioning" / "dashboards" / "t2.yaml"
    ds_file = grafana / "provisioning" / "datasources" / "prometheus.yaml"
    for f in (dash_file, ds_file):
        if not f.is_file():
            failures.append(f"{f}: missing")
            return
    try:
        dash = yaml.safe_load(dash_file.read_text())
        ds = yaml.safe_load(ds_file.read_text())
    except yaml.YAMLError as e:
        failures.append(f"provisioning YAML: {e}")
        return
    providers = dash.get("providers") if isinstance(dash, dict) else None
    if dash.get("apiVersion") != 1 or not providers:
        failures.append(f"{dash_file.name}: needs apiVersion 1 and providers")
    for prov in providers or []:
        path = (prov.get("options") or {}).get("path")
        if prov.get("type") != "file" or not prov.get("name"):
            failures.append(f"{dash_file.name}: provider {prov.get('name')} is not a named file provider")
        if path != DASHBOARDS_MOUNT:
            failures.append(f"{dash_file.name}: provider path {path} is not {DASHBOARDS_MOUNT}, "
                            "where its comment mounts deploy/grafana/dashboards")
        elif DASHBOARDS_MOUNT not in dash_file.read_text().split("providers:")[0]:
            failures.append(f"{dash_file.name}: its comment does not show the mount of {path}")
    if not sorted((grafana / "dashboards").glob("*.json")):
        failures.append("deploy/grafana/dashboards has no dashboards")
    sources = ds.get("datasources") if isinstance(ds, dict) else None
    if ds.get("apiVersion") != 1 or not sources:
        failures.append(f"{ds_file.name}: needs apiVersion 1 and datasources")
    for s in sources or []:
        if s.get("type") != "prometheus" or not str(s.get("url", "")).startswith("http") or not s.get("name"):
            failures.append(f"{ds_file.name}: data source {s.get('name')} is not a named prometheus with an http URL")


def promtool_check_config(path: pathlib.Path) -> tuple:
    p = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=120,
                       cwd=path.parent)
    return p.returncode, p.stdout + p.stderr


def relabel(labels: dict, rules: list):
    """Prometheus's relabelling (keep, drop, replace) of one target; None when dropped."""
    labels = dict(labels)
    for r in rules:
        action = r.get("action", "replace")
        value = r.get("separator", ";").join(labels.get(s, "") for s in r.get("source_labels", []))
        m = re.fullmatch(f"(?:{r.get('regex', '(.*)')})", value)
        if action == "keep" and not m or action == "drop" and m:
            return None
        if action == "replace" and m:
            repl = re.sub(r"\$\{?(\w+)\}?", lambda g: m.group(int(g.group(1))) if g.group(1).isdigit()
                          else m.group(g.group(1)), r.get("replacement", "$1"))
            if repl:
                labels[r["target_label"]] = repl
            else:
                labels.pop(r["target_label"], None)
        elif action not in ("keep", "drop", "replace"):
            raise ValueError(f"relabel action {action} is not simulated here")
    return labels


def k8s_pods(k8s: pathlib.Path) -> tuple:
    """(namespace, [(pod name, labels, [(port name or None, number or None)])]) of k8s/base's workloads."""
    namespace = yaml.safe_load((k8s / "base" / "kustomization.yaml").read_text()).get("namespace")
    pods = []
    for f in sorted((k8s / "base").glob("*.yaml")):
        for obj in yaml.safe_load_all(f.read_text()):
            if not isinstance(obj, dict):
                continue
            spec = obj.get("spec", {})
            template = (spec.get("jobTemplate", {}).get("spec", {}).get("template") if obj.get("kind") == "CronJob"
                        else spec.get("template") if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job")
                        else None)
            if not template:
                continue
            ports = [(port.get("name"), port.get("containerPort")) for c in template["spec"].get("containers", [])
                     for port in (c.get("ports") or [{}])]
            pods.append((obj["metadata"]["name"] + "-0", template["metadata"].get("labels", {}), ports))
    return namespace, pods


def check_k8s_discovery(config: dict, k8s: pathlib.Path, failures: list):
    jobs = [j for j in config["scrape_configs"] if j.get("kubernetes_sd_configs")]
    if len(jobs) != 1:
        failures.append(f"prometheus-k8s.yml: {len(jobs)} Kubernetes scrape jobs, expected one")
        return
    job = jobs[0]
    sd = job["kubernetes_sd_configs"]
    namespace, pods = k8s_pods(k8s)
    if [s.get("role") for s in sd] != ["pod"] or [s.get("namespaces", {}).get("names") for s in sd] != [[namespace]]:
        failures.append(f"prometheus-k8s.yml: discovery is not role pod in namespace {namespace}: {sd}")
    targets = []
    for name, labels, ports in pods:
        for port, number in ports:
            meta = {"__address__": f"10.0.0.1:{number}" if number else "10.0.0.1", "job": job["job_name"],
                    "__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": name,
                    "__meta_kubernetes_pod_phase": "Running", "__meta_kubernetes_pod_node_name": "node-a"}
            if port:
                meta["__meta_kubernetes_pod_container_port_name"] = port
                meta["__meta_kubernetes_pod_container_port_number"] = str(number)
            for k, v in labels.items():
                meta["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k)] = v
            out = relabel(meta, job.get("relabel_configs", []))
            if out:
                targets.append((out.get("job"), out.get("instance"), name, out["__address__"]))
    jobs_found = sorted(t[0] for t in targets)
    if jobs_found != sorted(T2_JOBS):
        failures.append(f"prometheus-k8s.yml: k8s/base's pods become jobs {jobs_found}, expected one each of {sorted(T2_JOBS)}")
    for job_name, instance, pod, address in targets:
        if instance != pod:
            failures.append(f"prometheus-k8s.yml: {pod}'s instance is {instance}, not the pod's name")
        if not address.endswith(f":{METRICS_PORT}"):
            failures.append(f"prometheus-k8s.yml: {pod} is scraped at {address}, not its metrics port {METRICS_PORT}")
    # A pod that is not running is not scraped.
    if pods and relabel({"__meta_kubernetes_pod_phase": "Succeeded", "__meta_kubernetes_pod_container_port_name": "metrics",
                         "__meta_kubernetes_pod_label_app_kubernetes_io_name": "t2-worker"},
                        job.get("relabel_configs", [])) is not None:
        failures.append("prometheus-k8s.yml: a finished pod stays a target")
    print(f"prometheus-k8s.yml relabelling on k8s/base's pods: {sorted(targets)}")


def check_scrape_configs(prom: pathlib.Path, k8s: pathlib.Path, failures: list):
    static = prom / "prometheus.yml"
    rc, out = promtool_check_config(static)
    print(out)
    if rc != 0:
        failures.append("promtool check config prometheus.yml failed")
    config = yaml.safe_load(static.read_text())
    names = {j["job_name"]: j for j in config.get("scrape_configs", [])}
    if not T2_JOBS <= set(names):
        failures.append(f"prometheus.yml: jobs {sorted(names)} lack some of {sorted(T2_JOBS)}")
    if not any(j.get("honor_labels") for n, j in names.items() if n not in T2_JOBS):
        failures.append("prometheus.yml: no Pushgateway job with honor_labels: true")
    if config.get("rule_files") != ["rules/t2.rules.yml"]:
        failures.append(f"prometheus.yml: rule_files {config.get('rule_files')} is not [rules/t2.rules.yml]")

    k8s_file = prom / "prometheus-k8s.yml"
    rc, out = promtool_check_config(k8s_file)
    print(out)
    k8s_config = yaml.safe_load(k8s_file.read_text())
    if rc != 0 and "field kubernetes_sd_configs not found" in out:
        print("this promtool has no Kubernetes discovery (Debian builds it without): checking "
              "prometheus-k8s.yml with kubernetes_sd_configs stubbed by a static target")
        stub = json.loads(json.dumps(k8s_config))
        stub["rule_files"] = [str(prom / r) for r in stub.get("rule_files", [])]
        for j in stub["scrape_configs"]:
            if j.pop("kubernetes_sd_configs", None) is not None:
                j["static_configs"] = [{"targets": ["stub.invalid:9090"]}]
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "prometheus-k8s-stub.yml"
            path.write_text(json.dumps(stub))
            rc, out = promtool_check_config(path)
            print(out)
    if rc != 0:
        failures.append("promtool check config prometheus-k8s.yml failed")
    if k8s_config.get("rule_files") != ["rules/t2.rules.yml"]:
        failures.append(f"prometheus-k8s.yml: rule_files {k8s_config.get('rule_files')} is not [rules/t2.rules.yml]")
    if not any(j.get("honor_labels") for j in k8s_config["scrape_configs"] if not j.get("kubernetes_sd_configs")):
        failures.append("prometheus-k8s.yml: no Pushgateway job with honor_labels: true")
    check_k8s_discovery(k8s_config, k8s, failures)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deploy", required=True, type=pathlib.Path)
    ap.add_argument("--readme", required=True)
    ap.add_argument("--k8s", type=pathlib.Path, help="k8s/ (default: beside deploy/)")
    args = ap.parse_args()
    grafana = (args.deploy / "grafana").resolve()
    k8s = (args.k8s or args.deploy.resolve().parent / "k8s").resolve()
    failures = []

    generated = load_generator(grafana).render()
    present = {p.name for p in (grafana / "dashboards").glob("*.json")}
    for name in sorted(present - set(generated)):
        failures.append(f"dashboards/{name} is not written by make_dashboards.py")
    for name, text in sorted(generated.items()):
        path = grafana / "dashboards" / name
        if not path.is_file() or path.read_text() != text:
            failures.append(f"dashboards/{name} differs from what make_dashboards.py writes: run it")

    known = exported(args.readme) | PROMETHEUS_SERIES
    unknown = {}
    queries = 0
    for path in sorted((grafana / "dashboards").glob("*.json")):
        queries += check_dashboard(path, known, failures, unknown)
    for name, where in sorted(unknown.items()):
        failures.append(f"series '{name}' is not in README.md's metrics tables; queried by "
                        + "; ".join(sorted(set(where))[:4]) + (" ..." if len(set(where)) > 4 else ""))
    if unknown:
        print("series the dashboards query that README.md does not list:\n  " + "\n  ".join(sorted(unknown)))

    check_provisioning(grafana, failures)
    check_scrape_configs(args.deploy.resolve() / "prometheus", k8s, failures)

    for f in failures:
        print("FAIL:", f)
    print(f"{len(present)} dashboard(s), {queries} panel queries, {len(known)} known series names; "
          f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
