"""k8s/: each overlay renders with `kubectl kustomize`; every object it renders (and every
manifest under k8s/tools) is valid against the newest Kubernetes schemas kubernetes-validate
ships, in strict mode (an unknown or misplaced field fails); every pod template meets the
Pod Security "restricted" profile and the project's own rules (numeric user 10001, read-only
root, requests and limits); the pieces fit together (probes, selectors, the HPA's target, the
dispatcher's worker address, the trainer's schedule policy, the images each overlay pins);
and checkov's Kubernetes checks pass, a skipped check only with its reason beside the object
(a `checkov.io/skipN: CKV_K8S_XX=reason` annotation).

Nothing here touches the network: kubernetes-validate ships its schemas, and checkov runs
with its platform download and update check turned off.

usage: check_k8s.py --k8s DIR [--kubectl PATH] [--checkov PATH]
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils

NAMESPACE = "t2serve"
OVERLAYS = ("cpu", "gpu")
IMAGES = ("t2serve/registry", "t2serve/worker", "t2serve/dispatcher", "t2serve/trainer")
UID = 10001
# What --device each overlay must give the worker and the trainer.
DEVICE = {"cpu": "cpu", "gpu": "cuda"}
WORKER_ADDRESS = f"dns:///t2-worker-headless.{NAMESPACE}.svc.cluster.local:50053"
# Where each kind keeps its pod template.
POD_SPEC_PATH = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Volume types the restricted profile allows.
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}
# Keeps checkov off the network: no platform download (policies, guidelines, mappings) and
# no PyPI update check; without an API key it would scan locally anyway.
CHECKOV_ENV = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "LOG_LEVEL": "WARNING"}
TIMEOUT_S = 90


def name_of(obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def dig(obj, *path, default=None):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


class Checker:
    def __init__(self):
        self.failures = []

    def fail(self, where: str, obj, field: str, problem: str):
        self.failures.append(f"{where}: {name_of(obj)}: {field}: {problem}")

    def expect(self, ok: bool, where: str, obj, field: str, problem: str):
        if not ok:
            self.fail(where, obj, field, problem)
        return ok


def render(kubectl: str, overlay: pathlib.Path) -> str:
    p = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=TIMEOUT_S)
    if p.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed (exit {p.returncode}):\n{p.stderr}")
    return p.stdout


def validate_schemas(c: Checker, where: str, objects: list, version: str):
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            field = ".".join(str(p) for p in e.path) or "(object)"
            c.fail(where, obj, field, f"not valid against Kubernetes {version} (strict): {e.message}")
        except kv_utils.SchemaNotFoundError as e:
            c.fail(where, obj, "apiVersion", e.message)


def check_container(c: Checker, where: str, obj, field: str, container: dict, tagged: bool):
    sc = container.get("securityContext") or {}
    f = f"{field}.securityContext"
    c.expect(sc.get("runAsNonRoot") is True, where, obj, f + ".runAsNonRoot", "must be true")
    c.expect(sc.get("runAsUser") == UID, where, obj, f + ".runAsUser", f"must be {UID}, is {sc.get('runAsUser')}")
    c.expect(sc.get("runAsGroup") == UID, where, obj, f + ".runAsGroup", f"must be {UID}, is {sc.get('runAsGroup')}")
    c.expect(sc.get("allowPrivilegeEscalation") is False, where, obj, f + ".allowPrivilegeEscalation",
             "must be false")
    c.expect(sc.get("privileged") is not True, where, obj, f + ".privileged", "must not be true")
    c.expect(sc.get("readOnlyRootFilesystem") is True, where, obj, f + ".readOnlyRootFilesystem", "must be true")
    c.expect(dig(sc, "capabilities", "drop") == ["ALL"], where, obj, f + ".capabilities.drop", "must be [ALL]")
    c.expect(not dig(sc, "capabilities", "add"), where, obj, f + ".capabilities.add", "must be empty")
    c.expect(dig(sc, "seccompProfile", "type") == "RuntimeDefault", where, obj, f + ".seccompProfile.type",
             "must be RuntimeDefault")
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            c.expect(dig(container, "resources", kind, resource) is not None, where, obj,
                     f"{field}.resources.{kind}.{resource}", "missing")
    for i, port in enumerate(container.get("ports") or []):
        c.expect("hostPort" not in port, where, obj, f"{field}.ports[{i}].hostPort", "not allowed")
    if tagged:
        image = container.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        c.expect("@sha256:" in image or (bool(tag) and tag != "latest"), where, obj, f"{field}.image",
                 f"{image!r} has no pinned tag or digest")


def check_pod_spec(c: Checker, where: str, obj, tagged: bool):
    path = POD_SPEC_PATH[obj["kind"]]
    spec = dig(obj, *path)
    base = ".".join(path)
    if not c.expect(isinstance(spec, dict), where, obj, base, "no pod spec"):
        return
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        c.expect(spec.get(field) is not True, where, obj, f"{base}.{field}", "not allowed")
    c.expect(spec.get("automountServiceAccountToken") is False, where, obj, f"{base}.automountServiceAccountToken",
             "must be false (no t2serve component calls the Kubernetes API)")
    psc = spec.get("securityContext") or {}
    c.expect(psc.get("runAsNonRoot") is True, where, obj, f"{base}.securityContext.runAsNonRoot", "must be true")
    c.expect(dig(psc, "seccompProfile", "type") == "RuntimeDefault", where, obj,
             f"{base}.securityContext.seccompProfile.type", "must be RuntimeDefault")
    for i, volume in enumerate(spec.get("volumes") or []):
        kinds = set(volume) - {"name"}
        c.expect(kinds <= ALLOWED_VOLUMES, where, obj, f"{base}.volumes[{i}] ({volume.get('name')})",
                 f"volume type {sorted(kinds - ALLOWED_VOLUMES)} not allowed by the restricted profile")
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(spec.get(group) or []):
            check_container(c, where, obj, f"{base}.{group}[{i}] ({container.get('name')})", container, tagged)


def pod_templates(objects):
    for obj in objects:
        if obj.get("kind") in POD_SPEC_PATH:
            yield obj


def template_labels(obj) -> dict:
    return dig(obj, *POD_SPEC_PATH[obj["kind"]][:-1], "metadata", "labels", default={})


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def args_after(container: dict, flag: str):
    args = container.get("args") or []
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def check_overlay(c: Checker, overlay: str, objects: list):
    where = f"overlays/{overlay}"
    by = {}
    for obj in objects:
        by.setdefault((obj["kind"], obj["metadata"]["name"]), obj)
    templates = list(pod_templates(objects))

    def need(kind, name):
        obj = by.get((kind, name))
        if obj is None:
            c.failures.append(f"{where}: {kind}/{name}: missing")
        return obj

    def container(obj, name):
        spec = dig(obj, *POD_SPEC_PATH[obj["kind"]])
        found = [x for x in spec.get("containers", []) if x.get("name") == name]
        if not found:
            c.fail(where, obj, "containers", f"no container named {name}")
            return {}
        return found[0]

    for obj in objects:
        if obj["kind"] != "Namespace":
            c.expect(dig(obj, "metadata", "namespace") == NAMESPACE, where, obj, "metadata.namespace",
                     f"must be {NAMESPACE}")
    ns = need("Namespace", NAMESPACE)
    if ns:
        labels = dig(ns, "metadata", "labels", default={})
        for mode in ("enforce", "audit", "warn"):
            key = f"pod-security.kubernetes.io/{mode}"
            c.expect(labels.get(key) == "restricted", where, ns, f"metadata.labels[{key}]", "must be restricted")

    for obj in templates:
        check_pod_spec(c, where, obj, tagged=True)
    # The images: each pinned by the overlay, and nothing else.
    images = {x.get("image", "") for obj in templates
              for x in dig(obj, *POD_SPEC_PATH[obj["kind"]]).get("containers", [])}
    for image in IMAGES:
        c.expect(any(i.startswith(image + ":") for i in images), where, {"kind": "Kustomization", "metadata":
                 {"name": overlay}}, "images", f"{image} is not rendered with a tag (rendered: {sorted(images)})")

    # Long-running pods can be scraped: a port named metrics on 9090, and the flag serving it.
    for obj in templates:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for x in dig(obj, *POD_SPEC_PATH[obj["kind"]]).get("containers", []):
            ports = {p.get("name"): p.get("containerPort") for p in x.get("ports") or []}
            c.expect(ports.get("metrics") == 9090, where, obj, f"containers ({x.get('name')}).ports",
                     "needs a port named metrics on 9090 (Prometheus' Kubernetes service discovery)")
            c.expect(args_after(x, "--metrics-listen") == ["0.0.0.0:9090"], where, obj,
                     f"containers ({x.get('name')}).args", "needs --metrics-listen 0.0.0.0:9090")

    registry = need("StatefulSet", "t2-registry")
    if registry:
        c.expect(dig(registry, "spec", "replicas") == 1, where, registry, "spec.replicas",
                 "must be 1 (one process per store folder)")
        c.expect(bool(dig(registry, "spec", "volumeClaimTemplates")), where, registry, "spec.volumeClaimTemplates",
                 "missing")
        c.expect(args_after(container(registry, "registry"), "--root") == ["/data"], where, registry,
                 "containers (registry).args", "needs --root /data")

    worker = need("Deployment", "t2-worker")
    if worker:
        w = container(worker, "worker")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = w.get(probe) or {}
            c.expect(dig(p, "grpc", "port") == 8086 and dig(p, "grpc", "service", default="") == "", where,
                     worker, f"containers (worker).{probe}", "must be a grpc probe of the plaintext health port 8086, service \"\"")
        startup = w.get("startupProbe") or {}
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        c.expect(budget >= 600, where, worker, "containers (worker).startupProbe",
                 f"gives the model load and SVD {budget} s; at least 600 s")
        c.expect(args_after(w, "--device") == [DEVICE[overlay]], where, worker, "containers (worker).args",
                 f"needs --device {DEVICE[overlay]}, has {args_after(w, '--device')}")
        for flag in ("--svf-cache-dir", "--expert-dir"):
            c.expect(len(args_after(w, flag)) == 1, where, worker, "containers (worker).args", f"needs {flag}")
        volumes = {v["name"]: v for v in dig(worker, "spec", "template", "spec", "volumes", default=[])}
        shm = [m for m in w.get("volumeMounts", []) if m.get("mountPath") == "/dev/shm"]
        c.expect(bool(shm) and dig(volumes.get(shm[0]["name"], {}), "emptyDir", "medium") == "Memory", where, worker,
                 "volumes", "/dev/shm must be a memory-backed emptyDir")
        models = [m for m in w.get("volumeMounts", []) if m.get("mountPath") == "/models"]
        c.expect(bool(models) and models[0].get("readOnly") is True, where, worker, "containers (worker).volumeMounts",
                 "/models must be mounted read-only")
        gpus = dig(w, "resources", "limits", "nvidia.com/gpu")
        if overlay == "gpu":
            c.expect(gpus == 1, where, worker, "containers (worker).resources.limits[nvidia.com/gpu]", "must be 1")
        else:
            c.expect(gpus is None, where, worker, "containers (worker).resources.limits[nvidia.com/gpu]",
                     "must not be set on CPU")

    headless = need("Service", "t2-worker-headless")
    if headless:
        c.expect(dig(headless, "spec", "clusterIP") == "None", where, headless, "spec.clusterIP",
                 "must be None (headless)")

    dispatcher = need("Deployment", "t2-dispatcher")
    if dispatcher:
        # Without replicas the HPA (checked below, minReplicas >= 2) sets the count.
        c.expect(dig(dispatcher, "spec", "replicas", default=2) >= 2, where, dispatcher, "spec.replicas",
                 "at least 2")
        c.expect(args_after(container(dispatcher, "dispatcher"), "--worker") == [WORKER_ADDRESS], where, dispatcher,
                 "containers (dispatcher).args", f"--worker must be {WORKER_ADDRESS}")
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    c.expect(len(hpas) == 1, where, {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "*"}}, "(count)",
             f"expected one, found {len(hpas)}")
    for hpa in hpas:
        c.expect(hpa["apiVersion"] == "autoscaling/v2", where, hpa, "apiVersion", "must be autoscaling/v2")
        target = dig(hpa, "spec", "scaleTargetRef", default={})
        c.expect((target.get("kind"), target.get("name")) == ("Deployment", "t2-dispatcher"), where, hpa,
                 "spec.scaleTargetRef", f"must be Deployment/t2-dispatcher, is {target}")
        c.expect(dig(hpa, "spec", "minReplicas", default=1) >= 2, where, hpa, "spec.minReplicas", "at least 2")

    cronjobs = [o for o in objects if o["kind"] == "CronJob"]
    c.expect(bool(cronjobs), where, {"kind": "CronJob", "metadata": {"name": "*"}}, "(count)", "no trainer CronJob")
    for cj in cronjobs:
        c.expect(dig(cj, "spec", "concurrencyPolicy") == "Forbid", where, cj, "spec.concurrencyPolicy",
                 "must be Forbid (runs share the work folder)")
        for field in (("spec", "startingDeadlineSeconds"), ("spec", "jobTemplate", "spec", "activeDeadlineSeconds"),
                      ("spec", "jobTemplate", "spec", "backoffLimit")):
            c.expect(dig(cj, *field) is not None, where, cj, ".".join(field), "missing")
        t = container(cj, "trainer")
        work = args_after(t, "--work-dir")
        spec = dig(cj, *POD_SPEC_PATH["CronJob"])
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = [m for m in t.get("volumeMounts", []) if work and m.get("mountPath") == work[0]]
        c.expect(bool(mounts) and "persistentVolumeClaim" in volumes.get(mounts[0]["name"], {}), where, cj,
                 "containers (trainer).volumeMounts", "--work-dir must be on a PersistentVolumeClaim (resume)")
        c.expect(args_after(t, "--device") == [DEVICE[overlay]], where, cj, "containers (trainer).args",
                 f"needs --device {DEVICE[overlay]}")

    for name in ("t2-dispatcher", "t2-worker"):
        pdb = need("PodDisruptionBudget", name)
        if pdb:
            sel = dig(pdb, "spec", "selector", "matchLabels", default={})
            c.expect(sel.get("app.kubernetes.io/name") == name, where, pdb, "spec.selector", f"must select {name}")

    # Selectors that select nothing are typos the API server accepts.
    for obj in objects:
        kind = obj["kind"]
        selectors = []
        if kind == "Service":
            selectors.append(("spec.selector", dig(obj, "spec", "selector")))
        elif kind == "PodDisruptionBudget" or kind in ("Deployment", "StatefulSet"):
            selectors.append(("spec.selector.matchLabels", dig(obj, "spec", "selector", "matchLabels")))
        elif kind == "NetworkPolicy":
            selectors.append(("spec.podSelector", dig(obj, "spec", "podSelector", "matchLabels")))
            for direction, peers in (("ingress", "from"), ("egress", "to")):
                for i, rule in enumerate(dig(obj, "spec", direction, default=[]) or []):
                    for j, peer in enumerate(rule.get(peers) or []):
                        if "podSelector" in peer and "namespaceSelector" not in peer:
                            selectors.append((f"spec.{direction}[{i}].{peers}[{j}].podSelector",
                                              dig(peer, "podSelector", "matchLabels")))
        for field, sel in selectors:
            if sel:
                c.expect(any(selects(sel, template_labels(t)) for t in templates), where, obj, field,
                         f"{sel} selects no pod template")

    deny = [o for o in objects if o["kind"] == "NetworkPolicy" and dig(o, "spec", "podSelector") == {}
            and set(dig(o, "spec", "policyTypes", default=[])) == {"Ingress", "Egress"}
            and not dig(o, "spec", "ingress") and not dig(o, "spec", "egress")]
    c.expect(bool(deny), where, {"kind": "NetworkPolicy", "metadata": {"name": "*"}}, "(default deny)",
             "no policy denying all ingress and egress of every pod")


def run_checkov(c: Checker, checkov: str, files: dict, expected: set):
    """One checkov run over all the rendered overlays (it takes seconds to start)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            pathlib.Path(tmp, name).write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_API", "PRISMA"))}
        env.update(CHECKOV_ENV)
        try:
            p = subprocess.run([checkov, "--directory", tmp, "--framework", "kubernetes", "--skip-download",
                                "--output", "json", "--compact"],
                               capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
        except (OSError, subprocess.TimeoutExpired) as e:
            c.failures.append(f"checkov: {e}")
            return
        try:
            report = json.loads(p.stdout)
        except json.JSONDecodeError:
            c.failures.append(f"checkov: no JSON report (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
            return
        reports = report if isinstance(report, list) else [report]
        seen = set()
        for r in reports:
            res = r.get("results", {})
            summary = r.get("summary", {})
            print(f"checkov ({r.get('check_type')}): {summary}")
            if summary.get("parsing_errors"):
                c.failures.append(f"checkov: {summary['parsing_errors']} files it could not parse: "
                                  f"{res.get('parsing_errors')}")
            for check in res.get("failed_checks", []):
                c.failures.append(f"checkov: {pathlib.Path(check['file_path']).name}: {check['resource']}: "
                                  f"{check['check_id']} failed: {check['check_name']}")
            for check in res.get("skipped_checks", []):
                reason = (check.get("check_result") or {}).get("suppress_comment", "")
                if not reason or reason == "No comment provided":
                    c.failures.append(f"checkov: {pathlib.Path(check['file_path']).name}: {check['resource']}: "
                                      f"{check['check_id']} skipped without a reason")
            for kind in ("passed_checks", "failed_checks", "skipped_checks"):
                seen |= {(pathlib.Path(x["file_path"]).name, x["resource"]) for x in res.get(kind, [])}
        # checkov passes over files it cannot read without a word: every workload must have been checked.
        for file, resource in sorted(expected - seen):
            c.failures.append(f"checkov: {file}: {resource} was not checked")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k8s", required=True, type=pathlib.Path)
    ap.add_argument("--kubectl", default=shutil.which("kubectl") or "kubectl")
    # The checkov beside this interpreter (the deployment checkers' venv), else the one on PATH.
    beside = pathlib.Path(sys.executable).parent / "checkov"
    ap.add_argument("--checkov", default=str(beside) if beside.exists() else shutil.which("checkov") or "checkov")
    args = ap.parse_args()
    k8s = args.k8s.resolve()
    version = kv_utils.latest_version()
    c = Checker()
    files = {}
    expected = set()

    def note_for_checkov(file: str, objects: list):
        for obj in pod_templates(objects):
            expected.add((file, f"{obj['kind']}.{dig(obj, 'metadata', 'namespace')}.{obj['metadata']['name']}"))

    for overlay in OVERLAYS:
        try:
            text = render(args.kubectl, k8s / "overlays" / overlay)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            c.failures.append(f"overlays/{overlay}: {e}")
            continue
        objects = [o for o in yaml.safe_load_all(text) if o]
        print(f"overlays/{overlay}: {len(objects)} objects")
        validate_schemas(c, f"overlays/{overlay}", objects, version)
        check_overlay(c, overlay, objects)
        files[f"{overlay}.yaml"] = text
        note_for_checkov(f"{overlay}.yaml", objects)

    # Manifests applied on their own (kubectl apply -f), not through an overlay.
    for path in sorted((k8s / "tools").glob("*.yaml")):
        where = f"tools/{path.name}"
        try:
            objects = [o for o in yaml.safe_load_all(path.read_text()) if o]
        except yaml.YAMLError as e:
            c.failures.append(f"{where}: not YAML: {e}")
            continue
        print(f"{where}: {len(objects)} objects")
        validate_schemas(c, where, objects, version)
        for obj in objects:
            c.expect(dig(obj, "metadata", "namespace") == NAMESPACE, where, obj, "metadata.namespace",
                     f"must be {NAMESPACE}")
        for obj in pod_templates(objects):
            check_pod_spec(c, where, obj, tagged=True)
        files[f"tools-{path.name}"] = path.read_text()
        note_for_checkov(f"tools-{path.name}", objects)

    if files:
        run_checkov(c, args.checkov, files, expected)

    print(f"schemas: Kubernetes {version} (kubernetes-validate {kubernetes_validate.__version__}, strict)")
    if c.failures:
        print(f"\n{len(c.failures)} problems:")
        for failure in c.failures:
            print("  " + failure)
        return 1
    print("k8s: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
