"""Writes t2serve's Grafana dashboards (deploy/grafana/dashboards/*.json) from the panel lists
below: the dashboards are code, and this file is their source. Edit here, then run

    python3 deploy/grafana/make_dashboards.py

tests/deploy/check_grafana.py fails when the JSON files differ from what this writes, when a
query names a series t2serve does not export (README.md, "Metrics"), or when a dashboard
breaks Grafana's schema essentials; tests/integration/python_client_test.py runs every query
against a real Prometheus that scraped a `t2 up` stack.

Every panel query takes its data source from the `datasource` variable and filters by the
dashboard's `job` / `instance` (/ `adapter`) variables; `$__rate_interval` is Grafana's.
"""
import json
import pathlib
import sys

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
RATE = "$__rate_interval"
QUANTILES = (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"))


def datasource_variable():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1,
            "regex": "", "skipUrlSync": False}


def query_variable(name, label, query, multi=True):
    # No allValue: "All" sends the values the query found (a|b|c), so a dashboard's job
    # variable keeps its panels to its own jobs.
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query, "current": {}, "hide": 0, "includeAll": multi, "multi": multi,
            "options": [], "refresh": 2, "regex": "", "sort": 1,
            "skipUrlSync": False}


def target(expr, legend="", ref="A", fmt=None, instant=False):
    t = {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend or "__auto",
         "range": not instant, "instant": instant, "editorMode": "code"}
    if fmt:
        t["format"] = fmt
    return t


def targets(*pairs, **kw):
    """pairs: (expr, legend); refIds A, B, ..."""
    return [target(e, l, chr(ord("A") + i), **kw) for i, (e, l) in enumerate(pairs)]


def quantiles(bucket, selector, by=""):
    """p50/p90/p99 of a histogram family's rate."""
    group = f"{by}, le" if by else "le"
    prefix = "{{" + by + "}} " if by else ""
    return [(f"histogram_quantile({q}, sum by ({group}) (rate({bucket}{selector}[{RATE}])))", prefix + name)
            for name, q in QUANTILES]


class Dashboard:
    def __init__(self, uid, title, description, variables):
        self.uid, self.title, self.description = uid, title, description
        self.variables = [datasource_variable()] + variables
        self.panels = []
        self.x = self.y = self.row_h = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False,
                            "gridPos": self._place(24, 1), "panels": []})
        self.x, self.y, self.row_h = 0, self.y + 1, 0

    def panel(self, kind, title, description, tgts, unit="short", w=12, h=8, options=None, field=None):
        defaults = {"unit": unit}
        defaults.update(field or {})
        if kind == "timeseries":
            defaults.setdefault("custom", {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                           "showPoints": "never", "spanNulls": False})
        p = {"id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
             "datasource": DATASOURCE, "gridPos": self._place(w, h), "targets": tgts,
             "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options or {}}
        if kind == "timeseries":
            p["options"] = options or {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                       "tooltip": {"mode": "multi", "sort": "desc"}}
        elif kind in ("stat", "gauge"):
            p["options"] = options or {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                       "colorMode": "value", "graphMode": "area", "textMode": "auto",
                                       "orientation": "auto"}
        elif kind == "heatmap":
            p["options"] = options or {"calculate": False, "yAxis": {"unit": unit},
                                       "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                                       "cellGap": 1, "tooltip": {"show": True, "yHistogram": False},
                                       "legend": {"show": True}}
        elif kind == "table":
            p["options"] = options or {"showHeader": True, "cellHeight": "sm"}
            p["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}}}]
        self.panels.append(p)

    def json(self):
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["t2serve"], "timezone": "browser", "editable": True, "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "30s", "liveNow": False,
            "time": {"from": "now-1h", "to": "now"}, "timepicker": {}, "fiscalYearStartMonth": 0,
            "weekStart": "",
            "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                      "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                      "name": "Annotations & Alerts", "type": "dashboard"}]},
            "links": [{"title": "t2serve dashboards", "type": "dashboards", "tags": ["t2serve"],
                       "asDropdown": True, "includeVars": False, "keepTime": True, "icon": "external link",
                       "targetBlank": False, "tooltip": "", "url": ""}],
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def overview():
    d = Dashboard("t2-overview", "t2serve / Overview",
                  "Traffic, latency, tokens, batching and memory of a t2serve deployment.",
                  [query_variable("job", "Job", 'label_values(up{job=~"t2-.*"}, job)'),
                   query_variable("instance", "Instance", 'label_values(up{job=~"$job"}, instance)'),
                   query_variable("adapter", "Adapter",
                                  'label_values(t2_worker_requests_total{job=~"$job",instance=~"$instance"}, adapter)')])
    s = '{job=~"$job",instance=~"$instance"}'
    a = '{job=~"$job",instance=~"$instance",adapter=~"$adapter"}'
    d.row("Traffic")
    d.panel("stat", "Targets up", "Scrape targets answering / all scrape targets of the selected jobs.",
            targets((f"sum(up{s})", "up"), (f"count(up{s})", "targets"), instant=True), w=6, h=8,
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "colorMode": "value", "graphMode": "none", "textMode": "value_and_name",
                     "orientation": "horizontal"})
    d.panel("timeseries", "Calls/s by service and code",
            "gRPC calls finished per second (grpc_server_handled_total), by job and status code.",
            targets((f"sum by (job, grpc_code) (rate(grpc_server_handled_total{s}[{RATE}]))",
                     "{{job}} {{grpc_code}}")), unit="reqps", w=18)
    d.panel("timeseries", "Error ratio by service",
            "Share of gRPC calls that ended with a status other than OK.",
            targets((f'sum by (job) (rate(grpc_server_handled_total{{job=~"$job",instance=~"$instance",grpc_code!="OK"}}[{RATE}]))'
                     f" / sum by (job) (rate(grpc_server_handled_total{s}[{RATE}]))", "{{job}}")),
            unit="percentunit", w=12)
    d.panel("timeseries", "Unary call latency by service",
            "Arrival to status of unary calls (streams last their whole life and are left out), p50/p90/p99.",
            targets(*quantiles("grpc_server_handling_seconds_bucket",
                               '{job=~"$job",instance=~"$instance",grpc_type="unary"}', "job")), unit="s", w=12)
    d.row("Latency (worker)")
    d.panel("timeseries", "Time to first token", "A call's arrival to its first token, p50/p90/p99.",
            targets(*quantiles("t2_worker_time_to_first_token_seconds_bucket", a)), unit="s", w=8)
    d.panel("timeseries", "Inter-token latency", "Time between a request's successive tokens, p50/p90/p99.",
            targets(*quantiles("t2_worker_inter_token_latency_seconds_bucket", a)), unit="s", w=8)
    d.panel("timeseries", "Request duration and queueing",
            "A Generate call's arrival to its end, and its wait for a batch slot (p50/p99).",
            targets((f"histogram_quantile(0.5, sum by (le) (rate(t2_worker_request_duration_seconds_bucket{a}[{RATE}])))", "duration p50"),
                    (f"histogram_quantile(0.99, sum by (le) (rate(t2_worker_request_duration_seconds_bucket{a}[{RATE}])))", "duration p99"),
                    (f"histogram_quantile(0.5, sum by (le) (rate(t2_worker_queue_duration_seconds_bucket{a}[{RATE}])))", "queue p50"),
                    (f"histogram_quantile(0.99, sum by (le) (rate(t2_worker_queue_duration_seconds_bucket{a}[{RATE}])))", "queue p99")),
            unit="s", w=8)
    d.panel("heatmap", "Time to first token distribution",
            "First tokens per latency bucket over time (the histogram's buckets).",
            targets((f"sum by (le) (increase(t2_worker_time_to_first_token_seconds_bucket{a}[{RATE}]))", "{{le}}"),
                    fmt="heatmap"), unit="s", w=24)
    d.row("Tokens")
    d.panel("timeseries", "Tokens/s", "Generated and prompt tokens per second of finished requests.",
            targets((f"sum(rate(t2_worker_generation_tokens_total{a}[{RATE}]))", "generated"),
                    (f"sum(rate(t2_worker_prompt_tokens_total{a}[{RATE}]))", "prompt")), unit="short", w=12)
    d.panel("timeseries", "Requests/s by finish reason and code",
            "Worker Generate calls ended per second: eos, stop, length, or none when they failed.",
            targets((f"sum by (finish_reason, code) (rate(t2_worker_requests_total{a}[{RATE}]))",
                     "{{finish_reason}} {{code}}")), unit="reqps", w=12)
    d.row("Queue and batch")
    d.panel("timeseries", "Running and waiting requests",
            "Sequences in the running batch against --max-batch-size; queued requests against --max-queue.",
            targets((f"sum by (instance) (t2_worker_running_requests{s})", "{{instance}} running"),
                    (f"sum by (instance) (t2_worker_max_batch_size{s})", "{{instance}} max batch size"),
                    (f"sum by (instance) (t2_worker_waiting_requests{s})", "{{instance}} waiting"),
                    (f"sum by (instance) (t2_worker_max_waiting_requests{s})", "{{instance}} max waiting")), w=12)
    d.panel("gauge", "Queue fill", "Waiting requests as a share of --max-queue (RESOURCE_EXHAUSTED beyond).",
            targets((f"max(t2_worker_waiting_requests{s} / clamp_min(t2_worker_max_waiting_requests{s}, 1))", "")),
            unit="percentunit", w=4, options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                              "showThresholdMarkers": True, "showThresholdLabels": False},
            field={"min": 0, "max": 1, "thresholds": {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "orange", "value": 0.5}, {"color": "red", "value": 0.8}]}})
    d.panel("timeseries", "Mean batch size",
            "Sequences per decode step (decode step sequences ÷ decode steps) against the largest batch allowed.",
            targets((f"sum by (instance) (rate(t2_worker_decode_step_sequences_total{s}[{RATE}]))"
                     f" / sum by (instance) (rate(t2_worker_decode_steps_total{s}[{RATE}]))", "{{instance}} mean"),
                    (f"max by (instance) (t2_worker_max_batch_size{s})", "{{instance}} max")), w=8)
    d.row("Memory and caches")
    d.panel("timeseries", "KV cache", "Memory of the running batch's keys and values against its limit, and of the prefix cache.",
            targets((f"sum by (instance) (t2_worker_kv_cache_bytes{s})", "{{instance}} KV cache"),
                    (f"sum by (instance) (t2_worker_kv_cache_limit_bytes{s})", "{{instance}} limit"),
                    (f"sum by (instance) (t2_worker_prefix_cache_bytes{s})", "{{instance}} prefix cache")),
            unit="bytes", w=12)
    d.panel("timeseries", "Prefix cache hit rate",
            "Share of prompts that reused a cached beginning, and prompt positions copied per second.",
            targets((f"sum(rate(t2_worker_prefix_cache_hits_total{s}[{RATE}])) / sum(rate(t2_worker_prefix_cache_queries_total{s}[{RATE}]))", "hit rate"),),
            unit="percentunit", w=6)
    d.panel("timeseries", "Prefix tokens reused/s", "Prompt positions copied from the prefix cache instead of computed.",
            targets((f"sum(rate(t2_worker_prefix_cache_reused_tokens_total{s}[{RATE}]))", "reused tokens"),), w=6)
    d.panel("timeseries", "Process memory by service",
            "Resident memory of each service, and the part of it malloc has handed to the program: "
            "RSS growing while the heap in use stays flat is the allocator holding freed memory, not a leak.",
            targets((f"sum by (job, instance) (process_resident_memory_bytes{s})", "{{job}} {{instance}} RSS"),
                    (f"sum by (job, instance) (t2_heap_in_use_bytes{s})", "{{job}} {{instance}} heap in use")),
            unit="bytes", w=16)
    d.panel("timeseries", "Open file descriptors", "Open file descriptors of each service.",
            targets((f"sum by (job, instance) (process_open_fds{s})", "{{job}} {{instance}}"),), w=8)
    d.panel("table", "Served model", "What each worker serves (t2_worker_model_info).",
            targets((f"t2_worker_model_info{s}", ""), fmt="table", instant=True), w=24, h=5)
    return d


def adapters():
    d = Dashboard("t2-adapters", "t2serve / Adapters",
                  "Per adapter (expert, mixture, base model) traffic and latency; loading, unloading and Σ′ composition on the workers.",
                  [query_variable("job", "Job", 'label_values(t2_worker_requests_total, job)'),
                   query_variable("instance", "Instance", 'label_values(t2_worker_requests_total{job=~"$job"}, instance)'),
                   query_variable("adapter", "Adapter",
                                  'label_values(t2_worker_requests_total{job=~"$job",instance=~"$instance"}, adapter)')])
    s = '{job=~"$job",instance=~"$instance"}'
    a = '{job=~"$job",instance=~"$instance",adapter=~"$adapter"}'
    d.row("Traffic by adapter")
    d.panel("timeseries", "Requests/s by adapter", "Worker Generate calls ended per second, by adapter.",
            targets((f"sum by (adapter) (rate(t2_worker_requests_total{a}[{RATE}]))", "{{adapter}}")), unit="reqps", w=12)
    d.panel("timeseries", "Requests/s by adapter and code", "The same by status code (Go names).",
            targets((f"sum by (adapter, code) (rate(t2_worker_requests_total{a}[{RATE}]))", "{{adapter}} {{code}}")),
            unit="reqps", w=12)
    d.panel("timeseries", "Time to first token p90 by adapter", "Arrival to first token, 90th percentile.",
            targets((f"histogram_quantile(0.9, sum by (adapter, le) (rate(t2_worker_time_to_first_token_seconds_bucket{a}[{RATE}])))", "{{adapter}}")),
            unit="s", w=8)
    d.panel("timeseries", "Request duration p90 by adapter", "Arrival to end of a Generate call, 90th percentile.",
            targets((f"histogram_quantile(0.9, sum by (adapter, le) (rate(t2_worker_request_duration_seconds_bucket{a}[{RATE}])))", "{{adapter}}")),
            unit="s", w=8)
    d.panel("timeseries", "Generated tokens/s by adapter", "Tokens generated by finished requests.",
            targets((f"sum by (adapter) (rate(t2_worker_generation_tokens_total{a}[{RATE}]))", "{{adapter}}")), w=8)
    d.row("Loading")
    d.panel("stat", "Adapters loaded", "Adapters loaded now on the selected workers, idle or not.",
            targets((f"sum(t2_worker_adapter_loaded{s})", "loaded"), instant=True), w=4)
    d.panel("table", "Loaded adapters", "Each adapter loaded, by worker (the series goes when it is unloaded).",
            targets((f"t2_worker_adapter_loaded{a}", ""), fmt="table", instant=True), w=8)
    d.panel("timeseries", "Adapter load time", "Registry fetch, checks and registration of an adapter, p50/p90/p99.",
            targets(*quantiles("t2_worker_adapter_load_seconds_bucket", a)), unit="s", w=12)
    d.panel("timeseries", "Adapter loads/s by adapter", "Loads started (cache misses), by adapter.",
            targets((f"sum by (adapter) (rate(t2_worker_adapter_load_seconds_count{a}[{RATE}]))", "{{adapter}}")),
            unit="ops", w=12)
    d.panel("timeseries", "Unloads and load failures",
            "Adapters unloaded (evicted: least recently used; deprecated) and loads that failed (the worker's log says why).",
            targets((f"sum by (reason) (increase(t2_worker_adapter_unloads_total{s}[{RATE}]))", "unloaded: {{reason}}"),
                    (f"sum(increase(t2_worker_adapter_load_failures_total{s}[{RATE}]))", "load failures")), w=12)
    d.row("Σ′ composition and forward passes")
    d.panel("timeseries", "Σ′ compositions/s by adapter", "Weight sets composed in merged form (cache misses).",
            targets((f"sum by (adapter) (rate(t2_worker_svf_compositions_total{a}[{RATE}]))", "{{adapter}}")),
            unit="ops", w=8)
    d.panel("timeseries", "Composition time by adapter", "Seconds per second spent composing weights.",
            targets((f"sum by (adapter) (rate(t2_worker_svf_composition_seconds_total{a}[{RATE}]))", "{{adapter}}")),
            unit="percentunit", w=8)
    d.panel("timeseries", "Rows/s by form", "Sequences in forward passes: factored (per-row z) or merged (W′ written).",
            targets((f"sum by (adapter, form) (rate(t2_worker_svf_rows_total{a}[{RATE}]))", "{{adapter}} {{form}}")), w=8)
    return d


def first_pass():
    d = Dashboard("t2-first-pass", "t2serve / First pass (dispatcher)",
                  "The dispatcher's first pass (strategy, category, confidence, cost), worker routing and retries, Adapt runs and the resolver cache.",
                  [query_variable("job", "Job", 'label_values(grpc_server_handled_total{grpc_service="t2.v1.Dispatcher"}, job)'),
                   query_variable("instance", "Instance", 'label_values(up{job=~"$job"}, instance)')])
    s = '{job=~"$job",instance=~"$instance"}'
    d.row("Requests")
    d.panel("timeseries", "Requests/s by strategy", "Generate and GenerateStream calls ended per second, by adaptation strategy.",
            targets((f"sum by (strategy) (rate(t2_dispatcher_requests_total{s}[{RATE}]))", "{{strategy}}")), unit="reqps", w=8)
    d.panel("timeseries", "Requests/s by category", "The category the first pass chose (none when the strategy does not classify).",
            targets((f"sum by (category) (rate(t2_dispatcher_requests_total{s}[{RATE}]))", "{{category}}")), unit="reqps", w=8)
    d.panel("timeseries", "Requests/s by code", "Dispatcher requests by status code (Go names).",
            targets((f"sum by (code) (rate(t2_dispatcher_requests_total{s}[{RATE}]))", "{{code}}")), unit="reqps", w=8)
    d.panel("timeseries", "Dispatcher calls/s by method and code", "Every dispatcher RPC (Generate, GenerateStream, Classify, Adapt).",
            targets((f"sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{s}[{RATE}]))", "{{grpc_method}} {{grpc_code}}")),
            unit="reqps", w=12)
    d.panel("timeseries", "Unary call latency by method p90", "Arrival to status of Generate, Classify and Adapt.",
            targets((f'histogram_quantile(0.9, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket{{job=~"$job",instance=~"$instance",grpc_type="unary"}}[{RATE}])))', "{{grpc_method}}")),
            unit="s", w=12)
    d.row("First pass")
    d.panel("timeseries", "First-pass duration by strategy", "First pass and adapter resolution, p50/p90/p99.",
            targets(*quantiles("t2_dispatcher_first_pass_seconds_bucket", s, "strategy")), unit="s", w=8)
    d.panel("timeseries", "First-pass share of the request", "First pass ÷ whole request, p50/p90/p99 by strategy.",
            targets(*quantiles("t2_dispatcher_first_pass_share_ratio_bucket", s, "strategy")), unit="percentunit", w=8)
    d.panel("timeseries", "Mean confidence by strategy", "The winning label's probability, averaged.",
            targets((f"sum by (strategy) (rate(t2_dispatcher_first_pass_confidence_ratio_sum{s}[{RATE}]))"
                     f" / sum by (strategy) (rate(t2_dispatcher_first_pass_confidence_ratio_count{s}[{RATE}]))", "{{strategy}}")),
            unit="percentunit", w=8, field={"min": 0, "max": 1})
    d.panel("heatmap", "Confidence distribution", "Classifications per confidence bucket over time.",
            targets((f"sum by (le) (increase(t2_dispatcher_first_pass_confidence_ratio_bucket{s}[{RATE}]))", "{{le}}"),
                    fmt="heatmap"), unit="percentunit", w=24)
    d.row("Workers and resolution")
    d.panel("stat", "Workers by health", "Workers in the dispatchers' pool by health-check state (the largest any dispatcher sees).",
            targets((f"max by (health) (t2_dispatcher_workers{s})", "{{health}}"), instant=True), w=6)
    d.panel("timeseries", "Worker retries/s", "Requests sent to another worker after one failed before the first token.",
            targets((f"sum(rate(t2_dispatcher_worker_retries_total{s}[{RATE}]))", "retries"),), unit="ops", w=6)
    d.panel("timeseries", "Resolver cache hit rate", "Expert, alias and mixture lookups answered from the dispatcher's cache.",
            targets((f'sum(rate(t2_dispatcher_resolver_lookups_total{{job=~"$job",instance=~"$instance",result="hit"}}[{RATE}]))'
                     f" / sum(rate(t2_dispatcher_resolver_lookups_total{s}[{RATE}]))", "hit rate"),),
            unit="percentunit", w=6, field={"min": 0, "max": 1})
    d.panel("timeseries", "Resolver lookups/s", "Lookups by result.",
            targets((f"sum by (result) (rate(t2_dispatcher_resolver_lookups_total{s}[{RATE}]))", "{{result}}"),), unit="ops", w=6)
    d.row("Adapt (few-shot)")
    d.panel("timeseries", "Adapt runs by code", "Adapt calls ended, by status code, per interval.",
            targets((f"sum by (code) (increase(t2_dispatcher_adapt_runs_total{s}[{RATE}]))", "{{code}}"),), w=8)
    d.panel("timeseries", "Adapt duration", "A whole CEM search, p50/p90/p99.",
            targets(*quantiles("t2_dispatcher_adapt_seconds_bucket", s)), unit="s", w=8)
    d.panel("timeseries", "Adapt evaluations/s", "Answers generated to score candidate mixtures.",
            targets((f"sum(rate(t2_dispatcher_adapt_evaluations_total{s}[{RATE}]))", "evaluations"),), unit="ops", w=8)
    return d


def registry_trainer():
    d = Dashboard("t2-registry-trainer", "t2serve / Registry and trainer",
                  "The registry's publishes, store and RPCs; the trainer job's last results (Pushgateway).",
                  [query_variable("job", "Job", 'label_values(grpc_server_handled_total{grpc_service="t2.v1.Registry"}, job)'),
                   query_variable("instance", "Instance", 'label_values(up{job=~"$job"}, instance)'),
                   query_variable("task", "Trainer task", "label_values(t2_trainer_last_run_timestamp_seconds, task)")])
    s = '{job=~"$job",instance=~"$instance"}'
    t = '{task=~"$task"}'
    d.row("Store")
    for title, name, unit in (("Experts", "t2_registry_experts", "short"),
                              ("Expert versions", "t2_registry_expert_versions", "short"),
                              ("Aliases", "t2_registry_aliases", "short"),
                              ("Mixtures", "t2_registry_mixtures", "short"),
                              ("Blob bytes", "t2_registry_blob_bytes", "bytes"),
                              ("Watch subscribers", "t2_registry_watch_subscribers", "short")):
        d.panel("stat", title, f"{name}: now, the largest any registry instance reports.",
                targets((f"max({name}{s})", title.lower())), unit=unit, w=4, h=5)
    d.row("Publishes")
    d.panel("timeseries", "Publishes by result and reason",
            "Expert publishes accepted or refused (invalid, exists, unknown_base, too_large, internal), per interval.",
            targets((f"sum by (result, reason) (increase(t2_registry_publishes_total{s}[{RATE}]))", "{{result}} {{reason}}"),), w=12)
    d.panel("stat", "Refused publishes, last hour", "Publishes refused in the last hour, by reason.",
            targets((f'sum by (reason) (increase(t2_registry_publishes_total{{job=~"$job",instance=~"$instance",result="refused"}}[1h]))', "{{reason}}"),
                    instant=True), w=12)
    d.row("RPCs")
    d.panel("timeseries", "Registry calls/s by method and code", "Every t2.v1.Registry RPC, by status code.",
            targets((f"sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{s}[{RATE}]))", "{{grpc_method}} {{grpc_code}}"),),
            unit="reqps", w=12)
    d.panel("timeseries", "Registry latency p99 by method",
            "Arrival to status, 99th percentile (Watch streams are left out: they last as long as the subscriber).",
            targets((f'histogram_quantile(0.99, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket{{job=~"$job",instance=~"$instance",grpc_type!="server_stream"}}[{RATE}])))', "{{grpc_method}}"),),
            unit="s", w=12)
    d.row("Trainer (Pushgateway)")
    d.panel("stat", "Since last success", "Time since a trainer run last ended with a decision (published or kept), by task.",
            targets((f"time() - max by (task) (t2_trainer_last_success_timestamp_seconds{t})", "{{task}}"), instant=True),
            unit="s", w=6, field={"thresholds": {"mode": "absolute", "steps": [
                {"color": "green", "value": None}, {"color": "red", "value": 93600}]}})
    d.panel("stat", "Last run failed", "1 when the last run failed (exit 1), by task.",
            targets((f"max by (task) (t2_trainer_last_run_failed{t})", "{{task}}"), instant=True), w=6,
            field={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}})
    d.panel("stat", "Last run published", "1 when the last decision published a new version, by task.",
            targets((f"max by (task) (t2_trainer_published{t})", "{{task}}"), instant=True), w=6)
    d.panel("stat", "Training time", "The last successful run's training time, by task.",
            targets((f"max by (task) (t2_trainer_training_seconds{t})", "{{task}}"), instant=True), unit="s", w=6)
    d.panel("timeseries", "Accuracy", "Best validation accuracy, and the publish gate's test accuracies (candidate vs current).",
            targets((f"max by (task) (t2_trainer_validation_accuracy{t})", "{{task}} validation"),
                    (f"max by (task, model) (t2_trainer_test_accuracy{t})", "{{task}} test {{model}}")),
            unit="percentunit", w=12, field={"min": 0, "max": 1})
    d.panel("timeseries", "Reward mean", "Mean reward of the last training step of the last successful run.",
            targets((f"max by (task) (t2_trainer_reward_mean{t})", "{{task}}"),), w=6)
    d.panel("table", "Last runs", "When each task's trainer last ran (Unix time).",
            targets((f"t2_trainer_last_run_timestamp_seconds{t}", ""), fmt="table", instant=True), w=6)
    return d


DASHBOARDS = {"overview": overview, "adapters": adapters, "first-pass": first_pass,
              "registry-trainer": registry_trainer}


def render() -> dict:
    """{file name: JSON text} of every dashboard."""
    return {f"{name}.json": json.dumps(make().json(), indent=2, ensure_ascii=False) + "\n"
            for name, make in DASHBOARDS.items()}


def main() -> int:
    out = pathlib.Path(__file__).resolve().parent / "dashboards"
    out.mkdir(exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text)
        print("wrote", out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
