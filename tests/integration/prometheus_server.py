"""A real Prometheus (Debian's `prometheus`, installed by scripts/setup.sh) for the integration
tests: it scrapes the given /metrics endpoints every second, and the tests ask it questions
through its HTTP API, as a dashboard or an alert would.

    with PrometheusServer(work_dir, {"t2-registry": ["127.0.0.1:1234"], ...}) as prom:
        prom.wait_for(lambda: prom.query('up') ..., "what is awaited")

With `template` (deploy/prometheus/prometheus.yml) the shipped scrape configuration is what
runs: its jobs keep their names and settings, get the given targets instead of the
placeholders, and its rule files are loaded; a template job not in `jobs` (the Pushgateway,
when the test has none) is left out, and a job in `jobs` the template lacks is an error.
"""
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request


def free_port() -> int:
    # Prometheus cannot listen on port 0 and tell which port it got: take one the OS picks now.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(address: str) -> str:
    """The text an endpoint serves at http://ADDRESS/metrics."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        return r.read().decode()


def promtool_check_metrics(text: str) -> str:
    """promtool's lint of a scrape: empty when clean, else its complaints."""
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return "" if p.returncode == 0 else (p.stdout + p.stderr)


class PrometheusServer:
    def __init__(self, work_dir: str, jobs: dict, template: str = None):
        self.dir = os.path.join(work_dir, "prometheus")
        os.makedirs(self.dir, exist_ok=True)
        if template is None:
            config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                      "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                                         for job, targets in jobs.items()]}
        else:
            config = self._from_template(template, jobs)
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.address = f"127.0.0.1:{free_port()}"
        self.log = os.path.join(self.dir, "prometheus.log")
        self.process = None

    @staticmethod
    def _from_template(template: str, jobs: dict) -> dict:
        import yaml
        with open(template) as f:
            config = yaml.safe_load(f)
        # Scrapes every second, so a test sees its calls at once.
        config.setdefault("global", {}).update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        base = os.path.dirname(os.path.abspath(template))
        config["rule_files"] = [os.path.join(base, r) for r in config.get("rule_files", [])]
        names = [j["job_name"] for j in config["scrape_configs"]]
        missing = set(jobs) - set(names)
        assert not missing, f"{template} has no scrape job {sorted(missing)} (it has {names})"
        kept = []
        for job in config["scrape_configs"]:
            if job["job_name"] in jobs:
                assert "static_configs" in job, f"{template}: job {job['job_name']} has no static_configs"
                job["static_configs"] = [{"targets": list(jobs[job["job_name"]])}]
                job.pop("scrape_interval", None)
                job.pop("scrape_timeout", None)
                kept.append(job)
        config["scrape_configs"] = kept
        return config

    def __enter__(self):
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address={self.address}"], stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.wait_for(self._ready, "Prometheus ready", timeout=60)
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("prometheus exited:\n" + open(self.log).read()[-3000:])
        try:
            with urllib.request.urlopen(f"http://{self.address}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list:
        """The instant vector `promql` evaluates to now: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        url = f"http://{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def query_or_error(self, promql: str):
        """(result, None), or (None, Prometheus's error) when it refuses the query."""
        try:
            return self.query(promql), None
        except urllib.error.HTTPError as e:
            return None, f"HTTP {e.code}: {e.read().decode(errors='replace')[:500]}"

    def label_values(self, label: str, match: str = None, lookback_s: float = 3600) -> list:
        """The values `label` has (on the series `match` selects) over the last `lookback_s`:
        what Grafana's label_values(match, label) variable query asks."""
        params = [("start", str(time.time() - lookback_s)), ("end", str(time.time()))]
        if match:
            params.append(("match[]", match))
        url = f"http://{self.address}/api/v1/label/{urllib.parse.quote(label)}/values?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def wait_for(self, condition, what: str, timeout: float = 60):
        """Polls `condition` (scrapes are every second) until it is true; fails after `timeout` s."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if condition():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout} s waiting for: {what}")
