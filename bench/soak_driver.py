#!/usr/bin/env python3
"""Soak driver (bench/run_soak.sh starts the stack and runs this; issue 14 item 6).

Mixed traffic against a running dispatcher and registry for a stated time, sampling every
service's RSS, open fds and threads; at the end a markdown table of their growth after
warm-up, the requests by kind and status code, and a PASS/FAIL line.

Traffic (weights in KINDS): Generate and GenerateStream with few new tokens (base model, an
expert by name, alias or pinned version, a mixture, a few-shot task, prompt classification),
streams cancelled after their first message, deadlines that expire, requests with bad
fields (INVALID_ARGUMENT, NOT_FOUND), Classify, a fresh channel per call now and then; one
thread runs a small Adapt every --adapt-every-s; one thread changes the registry every
--churn-every-s (publishes a new version of "soak-roll", moves the aliases math, code,
reasoning and cls onto recent versions, deprecates old ones, puts a mixture, sets and
deletes an alias, refused publishes and alias moves, a GetExpert download, a Watch stream
read and cancelled).

Measurement: at the end of warm-up and at the end the traffic is stopped, every client
thread parks once its call returns, and the driver waits --settle-s before sampling: both
figures are taken idle, so in-flight calls do not count as growth. Growth per hour is
(end - warm-up) scaled to one hour; the table also gives the least-squares slope of RSS over
the samples taken under load after warm-up. Target: RSS growth per hour <= --rss-limit-mb
(default 50) for every service, fds at the end within --fd-noise (default 2) of warm-up,
no service exited, no status code a kind does not expect.

With --metrics NAME=HOST:PORT the idle samples also read each service's malloc figures from
its /metrics (t2_heap_in_use_bytes, t2_heap_free_bytes): RSS that grows while the bytes in
use stay flat is held by the allocator, not leaked; bytes in use that grow are the program's.
"""
import argparse
import hashlib
import importlib
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict

PROMPTS = ["What is 7 plus 5?", "Name a colour.", "Write a haiku about rain.", "What is the capital of France?",
           "def add(a, b):", "Is 17 prime? Answer yes or no.", "Translate 'hello' into Spanish.",
           "Count from one to five."]


def load_stubs(proto_dir):
    """Python stubs generated from proto/ into a temporary folder, imported."""
    gen = tempfile.mkdtemp(prefix="t2-soak-stubs-")
    from grpc_tools import protoc
    protos = [os.path.join("t2", "v1", f) for f in ("common.proto", "registry.proto", "dispatcher.proto", "worker.proto")]
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={gen}", f"--grpc_python_out={gen}"] + protos)
    if rc != 0:
        sys.exit(f"protoc failed ({rc})")
    sys.path.insert(0, gen)
    names = ("common_pb2", "registry_pb2", "registry_pb2_grpc", "dispatcher_pb2", "dispatcher_pb2_grpc",
             "worker_pb2", "worker_pb2_grpc")
    return {n: importlib.import_module(f"t2.v1.{n}") for n in names}


def proc_sample(pid):
    """(RSS in KiB, open fds, threads) of a process, or None once it has exited."""
    try:
        rss = threads = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        return (rss, fds, threads)
    except (FileNotFoundError, ProcessLookupError):
        return None


def heap_sample(address):
    """(malloc bytes in use, bytes free in its arenas) in MiB from a service's /metrics, or None."""
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("t2_heap_in_use_bytes", "t2_heap_free_bytes"):
            values[name] = float(value) / 2**20
    if len(values) != 2:
        return None
    return (values["t2_heap_in_use_bytes"], values["t2_heap_free_bytes"])


class Gate:
    """Client threads call checkpoint() between calls; pause() returns once all have parked."""

    def __init__(self, n):
        self.n, self.parked, self.paused, self.stopped = n, 0, False, False
        self.cv = threading.Condition()

    def checkpoint(self):
        with self.cv:
            if not self.paused:
                return not self.stopped
            self.parked += 1
            self.cv.notify_all()
            while self.paused:
                self.cv.wait()
            self.parked -= 1
            return not self.stopped

    def sleep(self, seconds):
        """Sleeps up to `seconds`, waking early to park or stop."""
        end = time.time() + seconds
        while time.time() < end:
            with self.cv:
                if self.paused or self.stopped:
                    break
            time.sleep(min(0.2, max(0.0, end - time.time())))
        return self.checkpoint()

    def pause(self, timeout):
        with self.cv:
            self.paused = True
            end = time.time() + timeout
            while self.parked < self.n and time.time() < end:
                self.cv.wait(timeout=1.0)
            return self.parked == self.n

    def resume(self, stop=False):
        with self.cv:
            self.stopped = stop
            self.paused = False
            self.cv.notify_all()


class Soak:
    def __init__(self, args, pb):
        import grpc
        self.grpc, self.args, self.pb = grpc, args, pb
        self.dispatcher_channel = grpc.insecure_channel(args.dispatcher)
        self.registry_channel = grpc.insecure_channel(args.registry)
        self.dispatcher = pb["dispatcher_pb2_grpc"].DispatcherStub(self.dispatcher_channel)
        self.registry = pb["registry_pb2_grpc"].RegistryStub(self.registry_channel)
        self.blobs = [open(p, "rb").read() for p in args.blob]
        self.worker = (pb["worker_pb2_grpc"].WorkerStub(grpc.insecure_channel(args.worker))
                       if args.worker else None)
        self.counts = Counter()        # (kind, code name) -> calls
        self.unexpected = Counter()    # (kind, code name) -> calls with a code the kind does not expect
        self.examples = {}             # (kind, code name) -> one message, for the report
        self.latency = defaultdict(list)
        self.lock = threading.Lock()
        self.roll_version = 0          # newest published soak-roll version
        self.deprecated_upto = 0       # versions <= this are deprecated
        self.adapted = threading.Event()
        self.traffic_errors = []

    # ---- bookkeeping ----------------------------------------------------------------------
    def record(self, kind, code, expected, seconds, detail=""):
        name = code.name if hasattr(code, "name") else str(code)
        with self.lock:
            self.counts[(kind, name)] += 1
            self.latency[kind].append(seconds)
            if name not in expected:
                self.unexpected[(kind, name)] += 1
                self.examples.setdefault((kind, name), detail[:300])

    def call(self, kind, expected, fn):
        t0 = time.time()
        try:
            fn()
            self.record(kind, self.grpc.StatusCode.OK, expected, time.time() - t0)
        except self.grpc.RpcError as e:
            self.record(kind, e.code(), expected, time.time() - t0, e.details() or "")
        except Exception as e:  # a client-side failure: reported, never silently counted as OK
            self.record(kind, "CLIENT_" + type(e).__name__, expected, time.time() - t0, repr(e))

    # ---- request builders -----------------------------------------------------------------
    def gen_request(self, adaptation=None, max_new_tokens=None, chat=None):
        d, c = self.pb["dispatcher_pb2"], self.pb["common_pb2"]
        r = d.GenerateRequest(max_new_tokens=max_new_tokens or random.randint(2, 8))
        text = random.choice(PROMPTS)
        if chat if chat is not None else random.random() < 0.5:
            r.chat.CopyFrom(c.Chat(messages=[c.ChatMessage(role="user", content=text)]))
        else:
            r.prompt = text
        if random.random() < 0.3:
            r.sampling.CopyFrom(c.SamplingParams(temperature=0.8, top_p=0.9, seed=random.randint(1, 1 << 30)))
        if adaptation is not None:
            r.adaptation.CopyFrom(adaptation)
        return r

    def expert_choice(self):
        v = self.roll_version
        names = ["scaled-down", "scaled-up", "math", "code", "soak-roll"]
        if v >= 1:
            names.append(f"soak-roll@{random.randint(max(1, v - 6), v)}")  # may be deprecated: still served
        return random.choice(names)

    # ---- traffic kinds --------------------------------------------------------------------
    def k_generate_base(self):
        self.call("generate_base", {"OK"}, lambda: self.dispatcher.Generate(self.gen_request(), timeout=120))

    def k_generate_expert(self):
        d = self.pb["dispatcher_pb2"]
        a = d.Adaptation(expert=self.expert_choice())
        self.call("generate_expert", {"OK"}, lambda: self.dispatcher.Generate(self.gen_request(a), timeout=120))

    def k_generate_mixture(self):
        d = self.pb["dispatcher_pb2"]
        if self.adapted.is_set() and random.random() < 0.5:
            a = d.Adaptation(few_shot_task="soak-task")
        else:
            a = d.Adaptation(mixture="soak-put")
        self.call("generate_mixture", {"OK"}, lambda: self.dispatcher.Generate(self.gen_request(a), timeout=120))

    def first_pass_adaptation(self):
        """A label-scoring first pass: the classification prompt or the classifier expert."""
        d = self.pb["dispatcher_pb2"]
        if random.random() < 0.5:
            return d.Adaptation(prompt=d.Adaptation.PromptClassification(mode=d.CLASSIFY_MODE_LABEL_SCORE))
        return d.Adaptation(classifier_expert=d.Adaptation.ClassifierExpert(mode=d.CLASSIFY_MODE_LABEL_SCORE))

    def k_generate_classified(self):
        a = self.first_pass_adaptation()
        self.call("generate_classified", {"OK"}, lambda: self.dispatcher.Generate(self.gen_request(a), timeout=120))

    def k_stream_full(self):
        d = self.pb["dispatcher_pb2"]
        a = d.Adaptation(expert=self.expert_choice()) if random.random() < 0.5 else None

        def run():
            n = 0
            for m in self.dispatcher.GenerateStream(self.gen_request(a), timeout=120):
                n += 1
            if n < 2:
                raise RuntimeError(f"a stream of {n} messages")
        self.call("stream_full", {"OK"}, run)

    def k_stream_cancel(self):
        d = self.pb["dispatcher_pb2"]
        a = d.Adaptation(expert=self.expert_choice()) if random.random() < 0.5 else None

        def run():
            it = self.dispatcher.GenerateStream(self.gen_request(a, max_new_tokens=48), timeout=120)
            next(it)
            it.cancel()
            for _ in it:  # raises CANCELLED
                pass
        self.call("stream_cancel", {"CANCELLED"}, run)

    def k_deadline(self):
        d = self.pb["dispatcher_pb2"]
        a = d.Adaptation(expert=self.expert_choice()) if random.random() < 0.5 else None
        timeout = random.uniform(0.02, 0.4)
        req = self.gen_request(a, max_new_tokens=64)
        if random.random() < 0.5:
            fn = lambda: self.dispatcher.Generate(req, timeout=timeout)
        else:
            fn = lambda: [m for m in self.dispatcher.GenerateStream(req, timeout=timeout)]
        # an answer that ends early (EOS) may beat the deadline: OK is allowed, and counted
        self.call("deadline", {"DEADLINE_EXCEEDED", "OK"}, fn)

    def k_invalid(self):
        d, c = self.pb["dispatcher_pb2"], self.pb["common_pb2"]
        choice = random.randrange(7)
        if choice == 0:
            fn = lambda: self.dispatcher.Generate(self.gen_request(d.Adaptation(expert="Bad Name!")), timeout=30)
        elif choice == 1:
            fn = lambda: self.dispatcher.Generate(d.GenerateRequest(prompt="", max_new_tokens=4), timeout=30)
        elif choice == 2:
            fn = lambda: self.dispatcher.Generate(d.GenerateRequest(max_new_tokens=4), timeout=30)
        elif choice == 3:
            r = self.gen_request()
            r.sampling.CopyFrom(c.SamplingParams(temperature=1000.0))
            fn = lambda: self.dispatcher.Generate(r, timeout=30)
        elif choice == 4:  # Classify needs a classifying strategy
            fn = lambda: self.dispatcher.Classify(d.ClassifyRequest(prompt="x"), timeout=30)
        elif choice == 5:  # Adapt without examples
            fn = lambda: self.dispatcher.Adapt(d.AdaptRequest(task="soak-bad", verifier=d.VERIFIER_KIND_EXACT), timeout=30)
        else:
            r = self.gen_request()
            r.max_new_tokens = -1
            fn = lambda: [m for m in self.dispatcher.GenerateStream(r, timeout=30)]
        self.call(f"invalid_{choice}", {"INVALID_ARGUMENT"}, fn)

    def k_not_found(self):
        d = self.pb["dispatcher_pb2"]
        choice = random.randrange(4)
        a = [d.Adaptation(expert="no-such-expert"), d.Adaptation(mixture="no-such-mixture"),
             d.Adaptation(expert="scaled-down@99"), d.Adaptation(few_shot_task="no-such-task")][choice]
        self.call(f"not_found_{choice}", {"NOT_FOUND"},
                  lambda: self.dispatcher.Generate(self.gen_request(a), timeout=30))

    def k_classify(self):
        d = self.pb["dispatcher_pb2"]
        a = self.first_pass_adaptation()
        self.call("classify", {"OK"},
                  lambda: self.dispatcher.Classify(d.ClassifyRequest(prompt=random.choice(PROMPTS), adaptation=a),
                                                   timeout=60))

    def k_new_channel(self):
        """One call on a channel of its own, closed after it: connections come and go."""
        stub_mod = self.pb["dispatcher_pb2_grpc"]

        def run():
            with self.grpc.insecure_channel(self.args.dispatcher) as ch:
                stub_mod.DispatcherStub(ch).Generate(self.gen_request(max_new_tokens=2), timeout=60)
        self.call("new_channel", {"OK"}, run)

    KINDS = [("k_generate_base", 3), ("k_generate_expert", 3), ("k_generate_mixture", 1),
             ("k_generate_classified", 1), ("k_stream_full", 2), ("k_stream_cancel", 2), ("k_deadline", 1),
             ("k_invalid", 2), ("k_not_found", 1), ("k_classify", 1), ("k_new_channel", 1)]

    # ---- threads --------------------------------------------------------------------------
    def traffic(self, gate):
        fns = [getattr(self, n) for n, _ in self.KINDS]
        weights = [w for _, w in self.KINDS]
        try:
            while gate.checkpoint():
                random.choices(fns, weights)[0]()
        except Exception as e:
            self.traffic_errors.append(repr(e))
            raise

    def adapt_once(self):
        d = self.pb["dispatcher_pb2"]
        r = d.AdaptRequest(task="soak-task", verifier=d.VERIFIER_KIND_NUMERIC,
                           examples=[d.SolvedExample(question="What is 2 plus 3?", answer="5"),
                                     d.SolvedExample(question="What is 4 plus 4?", answer="8")],
                           experts=["scaled-down", "scaled-up"], generations=2, population=4, max_new_tokens=6)
        t0 = time.time()
        try:
            self.dispatcher.Adapt(r, timeout=600)
            self.record("adapt", self.grpc.StatusCode.OK, {"OK"}, time.time() - t0)
            self.adapted.set()
        except self.grpc.RpcError as e:
            self.record("adapt", e.code(), {"OK"}, time.time() - t0, e.details() or "")

    def adapter(self, gate):
        while gate.checkpoint():
            self.adapt_once()
            if not gate.sleep(self.args.adapt_every_s):
                break

    def publish(self, name, version, blob, kind, expected, sha=None):
        r = self.pb["registry_pb2"]

        def parts():
            yield r.PublishExpertRequest(header=r.PublishExpertRequest.Header(
                name=name, version=version, size_bytes=len(blob), sha256=sha or hashlib.sha256(blob).hexdigest()))
            for i in range(0, len(blob), 1 << 20):
                yield r.PublishExpertRequest(chunk=blob[i:i + (1 << 20)])
        self.call(kind, expected, lambda: self.registry.PublishExpert(parts(), timeout=60))

    def put_mixture(self):
        r, c = self.pb["registry_pb2"], self.pb["common_pb2"]

        def run():
            infos = {e.name: e for e in self.registry.ListExperts(r.ListExpertsRequest(), timeout=30).experts
                     if e.name in ("scaled-down", "scaled-up") and e.version == 1}
            refs = [c.ExpertRef(name=n, version=1, sha256=infos[n].sha256) for n in ("scaled-down", "scaled-up")]
            a = random.uniform(0.2, 0.8)
            self.registry.PutMixture(r.PutMixtureRequest(mixture=r.Mixture(
                name="soak-put", spec=c.AdapterSpec(experts=refs, alpha=[a, 1 - a]), source="soak")), timeout=30)
        self.call("registry_put_mixture", {"OK"}, run)

    def worker_info(self):
        """The worker's bounded caches (WorkerInfo), or {} when it does not answer."""
        try:
            info = self.worker.Info(self.pb["worker_pb2"].WorkerInfoRequest(), timeout=10)
        except self.grpc.RpcError:
            return {}
        return {"prefix_cache_mb": round(info.prefix_cache_bytes / 2**20, 1),
                "loaded_experts": len(info.loaded_experts), "experts_fetched": info.experts_fetched}

    def churn_once(self, n):
        r = self.pb["registry_pb2"]
        v = self.roll_version + 1
        blob = self.blobs[v % len(self.blobs)]
        self.publish("soak-roll", v, blob, "registry_publish", {"OK"})
        with self.lock:
            self.roll_version = v
        # aliases onto the newest two versions (never onto one that is about to be deprecated)
        for alias in ("math", "code", "reasoning", "cls"):
            target = random.randint(max(1, v - 1), v)
            self.call("registry_set_alias", {"OK"}, lambda: self.registry.SetAlias(
                r.SetAliasRequest(alias=alias, name="soak-roll", version=target), timeout=30))
        if v - 4 >= 1:
            old = v - 4
            self.call("registry_deprecate", {"OK"}, lambda: self.registry.DeprecateExpert(
                r.DeprecateExpertRequest(name="soak-roll", version=old), timeout=30))
            with self.lock:
                self.deprecated_upto = old
        self.put_mixture()
        self.call("registry_tmp_alias", {"OK"}, lambda: (
            self.registry.SetAlias(r.SetAliasRequest(alias="soak-tmp", name="scaled-up", version=1), timeout=30),
            self.registry.DeleteAlias(r.DeleteAliasRequest(alias="soak-tmp"), timeout=30)))
        self.call("registry_list", {"OK"}, lambda: (
            self.registry.ListExperts(r.ListExpertsRequest(include_deprecated=True), timeout=30),
            self.registry.ListAliases(r.ListAliasesRequest(), timeout=30),
            self.registry.ListMixtures(r.ListMixturesRequest(), timeout=30)))
        # refused changes
        if len(self.blobs) > 1:  # the same version with other bytes
            self.publish("soak-roll", v, self.blobs[(v + 1) % len(self.blobs)], "registry_publish_conflict",
                         {"ALREADY_EXISTS"})
        self.publish("soak-bad", 1, blob, "registry_publish_bad_sha", {"INVALID_ARGUMENT", "DATA_LOSS"},
                     sha=hashlib.sha256(b"other").hexdigest())
        if self.deprecated_upto >= 1:
            self.call("registry_alias_on_deprecated", {"FAILED_PRECONDITION"}, lambda: self.registry.SetAlias(
                r.SetAliasRequest(alias="soak-tmp", name="soak-roll", version=self.deprecated_upto), timeout=30))
        if n % 3 == 0:
            self.publish("soak-roll", v, blob, "registry_publish_again", {"OK"})  # same bytes: a no-op

            def download():
                size = 0
                for part in self.registry.GetExpert(r.GetExpertRequest(name="math"), timeout=60):
                    size += len(part.chunk)
                if size == 0:
                    raise RuntimeError("an empty blob")
            self.call("registry_get_expert", {"OK"}, download)

            def watch():
                it = self.registry.Watch(r.WatchRequest(from_sequence=1), timeout=60)
                next(it)
                it.cancel()
                for _ in it:
                    pass
            self.call("registry_watch_cancel", {"CANCELLED"}, watch)

    def churner(self, gate):
        n = 0
        while gate.checkpoint():
            n += 1
            self.churn_once(n)
            if not gate.sleep(self.args.churn_every_s):
                break


def fit_slope_per_hour(points):
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 0.0 if den == 0 else sum((t - mt) * (v - mv) for t, v in points) / den * 3600


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dispatcher", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--worker", help="the worker's address: its bounded caches are read at each idle sample")
    ap.add_argument("--pid", action="append", default=[], help="NAME=PID of a service to sample (repeat)")
    ap.add_argument("--blob", action="append", required=True, help="an expert file to publish as soak-roll (repeat)")
    ap.add_argument("--proto-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto"))
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4, help="traffic threads (default 4)")
    ap.add_argument("--sample-s", type=float, default=10)
    ap.add_argument("--churn-every-s", type=float, default=5)
    ap.add_argument("--adapt-every-s", type=float, default=45)
    ap.add_argument("--settle-s", type=float, default=5, help="idle time before the two measured samples")
    ap.add_argument("--rss-limit-mb", type=float, default=50, help="RSS growth per hour allowed per service")
    ap.add_argument("--fd-noise", type=int, default=2, help="fd growth still counted as none")
    ap.add_argument("--json", help="write every sample and count here")
    ap.add_argument("--metrics", action="append", default=[], metavar="NAME=HOST:PORT",
                    help="a service's metrics endpoint: its malloc figures at the idle samples")
    args = ap.parse_args()

    pb = load_stubs(os.path.abspath(args.proto_dir))
    pids = dict(p.split("=", 1) for p in args.pid)
    soak = Soak(args, pb)
    duration = args.minutes * 60
    warmup = min(max(120.0, 0.2 * duration), 0.5 * duration)
    warmup_rule = "20% of the run" if 0.2 * duration >= 120 else (
        "2 min" if 120 <= 0.5 * duration else "half the run (shorter than 4 min)")

    # Before traffic: the mixture that generate_mixture names, and version 1 of soak-roll.
    soak.churn_once(0)

    gate = Gate(args.clients + 2)
    threads = [threading.Thread(target=soak.traffic, args=(gate,), daemon=True) for _ in range(args.clients)]
    threads += [threading.Thread(target=soak.adapter, args=(gate,), daemon=True),
                threading.Thread(target=soak.churner, args=(gate,), daemon=True)]
    samples = []   # (seconds since start, phase, {service: (rss KiB, fds, threads) or None})
    worker_caches = []  # (phase, {what: value}) at the idle samples
    metrics = dict(m.split("=", 1) for m in args.metrics)
    heaps = {}  # phase -> {service: (in use MiB, free MiB) or None} at the idle samples
    crashed = {}
    start = time.time()

    def sample(phase):
        s = {name: proc_sample(int(pid)) for name, pid in pids.items()}
        t = time.time() - start
        for name, v in s.items():
            if v is None and name not in crashed:
                crashed[name] = t
        samples.append((t, phase, s))
        return s

    def idle_sample(phase):
        t0 = time.time()
        if not gate.pause(timeout=900):
            print(f"warning: client threads did not park within 900 s ({phase})", file=sys.stderr)
        time.sleep(args.settle_s)
        s = sample(phase)
        print(f"[{time.time() - start:7.0f} s] {phase} (idle, parked in {time.time() - t0 - args.settle_s:.0f} s): "
              + ", ".join(f"{n} {v[0] / 1024:.1f} MB {v[1]} fds {v[2]} thr" if v else f"{n} EXITED"
                          for n, v in s.items()), flush=True)
        if metrics:
            heaps[phase] = {name: heap_sample(address) for name, address in metrics.items()}
            print("    malloc in use / free: " + ", ".join(
                f"{n} {h[0]:.1f} / {h[1]:.1f} MB" if h else f"{n} unavailable" for n, h in heaps[phase].items()),
                flush=True)
        if args.worker:
            # What the worker holds on purpose, bounded by its flags: growth here is a cache
            # filling, not a leak.
            info = soak.worker_info()
            worker_caches.append((phase, info))
            print(f"    worker caches: " + (", ".join(f"{k} {v}" for k, v in info.items()) if info else "unavailable"),
                  flush=True)
        return s

    sample("start")
    for t in threads:
        t.start()
    warm = end = None
    paused_s = 0.0
    next_sample = time.time() + args.sample_s
    next_progress = time.time() + 60
    while True:
        now = time.time()
        traffic_s = now - start - paused_s
        if warm is None and traffic_s >= warmup:
            p0 = time.time()
            warm = idle_sample("warm-up end")
            warm_t = samples[-1][0]
            gate.resume()
            paused_s += time.time() - p0
            now = time.time()
            next_sample = max(next_sample, now + args.sample_s)
        if traffic_s >= duration:
            break
        if now >= next_sample:
            sample("warm-up" if warm is None else "load")
            next_sample += args.sample_s
        if now >= next_progress:
            with soak.lock:
                total, bad = sum(soak.counts.values()), sum(soak.unexpected.values())
            last = samples[-1][2]
            print(f"[{now - start:7.0f} s] {total} calls ({bad} unexpected); "
                  + ", ".join(f"{n} {v[0] / 1024:.0f} MB/{v[1]} fds" if v else f"{n} EXITED" for n, v in last.items()),
                  flush=True)
            next_progress += 60
        if crashed:
            print(f"a service exited: {crashed}", file=sys.stderr)
            break
        time.sleep(0.2)
    end = idle_sample("end")
    end_t = samples[-1][0]
    gate.resume(stop=True)
    for t in threads:
        t.join(timeout=60)
    traffic_minutes = (time.time() - start - paused_s) / 60

    if warm is None:  # stopped before warm-up ended (a crash)
        warm, warm_t = samples[0][2], samples[0][0]

    # ---- report ---------------------------------------------------------------------------
    hours = max(end_t - warm_t, 1.0) / 3600
    fails = []
    print()
    print(f"## Soak: {traffic_minutes:.1f} min of traffic ({args.clients} client threads, registry changes every "
          f"{args.churn_every_s:g} s, Adapt every {args.adapt_every_s:g} s); warm-up = first {warmup / 60:.1f} min "
          f"({warmup_rule}); measured window {(end_t - warm_t) / 60:.1f} min, extrapolated to 1 h")
    print()
    print("Idle samples (traffic parked, then {:g} s) at the end of warm-up and at the end; slope: least squares over "
          "the samples under load after warm-up.".format(args.settle_s))
    print()
    print("| service | RSS warm-up MB | RSS end MB | growth MB | growth MB/h | slope MB/h | fds warm-up | fds end "
          "| fd growth | max fds (load) | threads warm-up | threads end |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in pids:
        w, e = warm.get(name), end.get(name)
        if w is None or e is None:
            print(f"| {name} | {'EXITED' if w is None else f'{w[0] / 1024:.1f}'} | EXITED | | | | | | | | | |")
            fails.append(f"{name} exited at {crashed.get(name, 0):.0f} s")
            continue
        growth = (e[0] - w[0]) / 1024
        per_h = growth / hours
        load = [(t, s[name][0] / 1024) for t, ph, s in samples if ph == "load" and s.get(name)]
        slope = fit_slope_per_hour(load)
        max_fds = max([s[name][1] for _, ph, s in samples if ph == "load" and s.get(name)] or [e[1]])
        fd_growth = e[1] - w[1]
        print(f"| {name} | {w[0] / 1024:.1f} | {e[0] / 1024:.1f} | {growth:+.1f} | {per_h:+.1f} | {slope:+.1f} "
              f"| {w[1]} | {e[1]} | {fd_growth:+d} | {max_fds} | {w[2]} | {e[2]} |")
        if per_h > args.rss_limit_mb:
            fails.append(f"{name} RSS {per_h:+.1f} MB/h > {args.rss_limit_mb:g}")
        if fd_growth > args.fd_noise:
            fails.append(f"{name} fds {fd_growth:+d} > {args.fd_noise}")

    if metrics:
        print()
        print("malloc at the same idle samples (/metrics): in use = handed to the program and not freed; "
              "free = kept in malloc's arenas, part of RSS.")
        print()
        print("| service | in use warm-up MB | in use end MB | in use growth MB/h | free warm-up MB | free end MB |")
        print("|---|---|---|---|---|---|")
        for name in metrics:
            w, e = heaps.get("warm-up end", {}).get(name), heaps.get("end", {}).get(name)
            if w is None or e is None:
                print(f"| {name} | unavailable | | | | |")
                continue
            print(f"| {name} | {w[0]:.1f} | {e[0]:.1f} | {(e[0] - w[0]) / hours:+.1f} | {w[1]:.1f} | {e[1]:.1f} |")

    # RSS along the run, one row a minute or so
    print()
    step = max(1, int(60 / args.sample_s))
    print("RSS MB / fds / threads along the run:")
    print()
    print("| min | phase | " + " | ".join(pids) + " |")
    print("|---|---|" + "---|" * len(pids))
    for i, (t, ph, s) in enumerate(samples):
        if i % step == 0 or ph in ("warm-up end", "end"):
            print(f"| {t / 60:.1f} | {ph} | " + " | ".join(
                f"{s[n][0] / 1024:.0f} / {s[n][1]} / {s[n][2]}" if s.get(n) else "exited" for n in pids) + " |")

    print()
    print("Requests by kind and code (unexpected codes marked *):")
    print()
    print("| kind | code | calls | p50 s | max s |")
    print("|---|---|---|---|---|")
    for (kind, code), n in sorted(soak.counts.items()):
        lat = sorted(soak.latency[kind])
        mark = "*" if (kind, code) in soak.unexpected else ""
        print(f"| {kind} | {code}{mark} | {n} | {lat[len(lat) // 2]:.2f} | {lat[-1]:.2f} |")
    total = sum(soak.counts.values())
    bad = sum(soak.unexpected.values())
    print(f"\n{total} calls, {bad} with an unexpected code.")
    for (kind, code), msg in sorted(soak.examples.items()):
        print(f"  * {kind} {code}: {msg}")
    if bad:
        fails.append(f"{bad} calls with unexpected codes")
    if soak.traffic_errors:
        fails.append(f"client threads died: {soak.traffic_errors}")
    print()
    print(f"Target: RSS growth <= {args.rss_limit_mb:g} MB/h per service (idle end - idle warm-up end, "
          f"extrapolated), fd growth <= {args.fd_noise} (idle fds, end - warm-up end), no service exits, "
          "no unexpected codes.")
    print(("PASS" if not fails else "FAIL: " + "; ".join(fails)) +
          f" ({traffic_minutes:.1f} min run, {(end_t - warm_t) / 60:.1f} min measured after warm-up)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": samples, "counts": {f"{k}|{c}": n for (k, c), n in soak.counts.items()},
                       "unexpected": {f"{k}|{c}": n for (k, c), n in soak.unexpected.items()},
                       "warmup_s": warmup, "minutes": traffic_minutes, "fails": fails,
                       "worker_caches": worker_caches, "heaps": heaps}, f, indent=1)
    sys.exit(0 if not fails else 1)


if __name__ == "__main__":
    main()
