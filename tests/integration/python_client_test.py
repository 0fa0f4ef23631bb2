"""A client in another language: Python grpcio stubs generated from proto/ at test time call
the registry and the dispatcher of a stack started with `t2 up` (every port ephemeral), while a
real Prometheus scrapes the three services' /metrics; afterwards its HTTP API must show the
calls the client made, every family of the README's metrics table must have samples, and
promtool must find each endpoint's text clean.

usage: python_client_test.py --t2 PATH_TO_t2 --proto-dir DIR --readme README.md [--model PATH]
Exits non-zero (with the stack's logs) on the first failed check.
"""
import argparse
import hashlib
import importlib
import os
import re
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

from prometheus_server import PrometheusServer, promtool_check_metrics, scrape


def readme_metric_families(readme: str) -> list:
    """The metric names of the README's metrics table (rows "| `name` | type | ...")."""
    return re.findall(r"^\| `([a-z][a-z0-9_:]*)` \| (?:counter|gauge|histogram|summary) \|", open(readme).read(), re.M)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t2", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--readme", required=True)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="t2-python-client-")
    gen = os.path.join(work, "gen")
    os.makedirs(gen)
    from grpc_tools import protoc
    protos = [os.path.join("t2", "v1", f) for f in ("common.proto", "registry.proto", "dispatcher.proto", "worker.proto")]
    rc = protoc.main(["protoc", f"-I{args.proto_dir}", f"--python_out={gen}", f"--grpc_python_out={gen}"] + protos)
    assert rc == 0, f"protoc failed ({rc})"
    sys.path.insert(0, gen)
    import grpc
    common = importlib.import_module("t2.v1.common_pb2")
    registry_pb2 = importlib.import_module("t2.v1.registry_pb2")
    registry_grpc = importlib.import_module("t2.v1.registry_pb2_grpc")
    dispatcher_pb2 = importlib.import_module("t2.v1.dispatcher_pb2")
    dispatcher_grpc = importlib.import_module("t2.v1.dispatcher_pb2_grpc")

    # An expert that really changes the model: every singular value scaled by 0.9.
    expert = os.path.join(work, "scaled.safetensors")
    subprocess.run([args.t2, "expert", "constant", "--model", args.model, "--value", "0.9", "--normalization", "none",
                    "--task", "math", "--out", expert], check=True, stdout=subprocess.DEVNULL)

    up = subprocess.Popen([args.t2, "up", "--model", args.model, "--dir", os.path.join(work, "stack"),
                           "--dispatcher-port", "0", "--registry-port", "0", "--worker-port", "0",
                           "--max-batch-size", "4"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    lines = queue.Queue()
    # A thread reads t2 up's output, so waiting for a line can time out.
    threading.Thread(target=lambda: [lines.put(l) for l in up.stdout], daemon=True).start()
    addresses, metrics = {}, {}
    prometheus = None
    try:
        deadline = time.time() + 600
        while len(addresses) < 3 or len(metrics) < 3:
            assert time.time() < deadline and up.poll() is None, "t2 up did not start:\n" + "".join(output)
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            output.append(line)
            m = re.match(r"\s+(dispatcher|registry|worker)\s+(\S+:\d+)", line)
            if m:
                addresses[m.group(1)] = m.group(2)
            metrics.update(re.findall(r"(dispatcher|registry|worker) http://(\S+)/metrics", line))
        print("stack:", addresses, "metrics:", metrics, flush=True)
        prometheus = PrometheusServer(work, {f"t2-{name}": [address] for name, address in metrics.items()}).__enter__()
        prometheus.wait_for(lambda: len([r for r in prometheus.query("up == 1")]) == 3, "all three services scraped")

        registry = registry_grpc.RegistryStub(grpc.insecure_channel(addresses["registry"]))
        dispatcher = dispatcher_grpc.DispatcherStub(grpc.insecure_channel(addresses["dispatcher"]))

        # Registry: publish (client stream: header, then chunks), list, alias.
        blob = open(expert, "rb").read()
        def parts():
            yield registry_pb2.PublishExpertRequest(header=registry_pb2.PublishExpertRequest.Header(
                name="py-math", version=1, size_bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest()))
            for i in range(0, len(blob), 1 << 20):
                yield registry_pb2.PublishExpertRequest(chunk=blob[i:i + (1 << 20)])
        info = registry.PublishExpert(parts(), timeout=60)
        assert info.name == "py-math" and info.version == 1, info
        assert info.sha256 == hashlib.sha256(blob).hexdigest()
        listed = registry.ListExperts(registry_pb2.ListExpertsRequest(), timeout=10)
        assert [(e.name, e.version) for e in listed.experts] == [("py-math", 1)], listed
        alias = registry.SetAlias(registry_pb2.SetAliasRequest(alias="math", name="py-math", version=1), timeout=10)
        assert alias.target.name == "py-math" and alias.target.version == 1, alias
        got = registry.GetAlias(registry_pb2.GetAliasRequest(alias="math"), timeout=10)
        assert got.target.sha256 == info.sha256, got

        def request(adaptation=None):
            r = dispatcher_pb2.GenerateRequest(
                chat=common.Chat(messages=[common.ChatMessage(role="user", content="What is 12 times 12?")]),
                max_new_tokens=24)
            if adaptation is not None:
                r.adaptation.CopyFrom(adaptation)
            return r

        # Dispatcher: unary and streaming answers agree, for the base model and the expert.
        base = dispatcher.Generate(request(), timeout=120)
        assert base.text and base.usage.completion_tokens > 0, base
        assert base.finish_reason in (common.FINISH_REASON_EOS, common.FINISH_REASON_LENGTH), base
        with_expert = dispatcher_pb2.Adaptation(expert="math")
        unary = dispatcher.Generate(request(with_expert), timeout=120)
        assert unary.first_pass.adapter == "py-math@1", unary.first_pass
        stream = list(dispatcher.GenerateStream(request(with_expert), timeout=120))
        assert stream[0].HasField("first_pass") and stream[0].first_pass.adapter == "py-math@1", stream[0]
        streamed = "".join(m.text for m in stream)
        assert streamed == unary.text, (streamed, unary.text)
        assert stream[-1].finish_reason == unary.finish_reason
        assert unary.text != base.text, "the scaled expert should change the answer"
        print("base:", repr(base.text), "\nexpert:", repr(unary.text), flush=True)

        # Unknown names are NOT_FOUND, never a silent fallback to the base model.
        try:
            dispatcher.Generate(request(dispatcher_pb2.Adaptation(expert="no-such-expert")), timeout=60)
            raise AssertionError("unknown expert accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
            assert "no-such-expert" in e.details(), e.details()

        # What Prometheus saw of it, as a dashboard asks.
        def handled(job, method, code):
            r = prometheus.query(f'sum(grpc_server_handled_total{{job="{job}",grpc_method="{method}",grpc_code="{code}"}})')
            return float(r[0]["value"][1]) if r else 0.0
        expected = [("t2-dispatcher", "Generate", "OK", 2), ("t2-dispatcher", "GenerateStream", "OK", 1),
                    ("t2-dispatcher", "Generate", "NotFound", 1), ("t2-registry", "PublishExpert", "OK", 1),
                    ("t2-registry", "SetAlias", "OK", 1)]
        prometheus.wait_for(lambda: all(handled(*e[:3]) >= e[3] for e in expected),
                            f"calls counted: {expected}", timeout=30)
        worker_calls = prometheus.query('sum by (grpc_method) (grpc_server_handled_total{job="t2-worker",'
                                        'grpc_service="t2.v1.Worker",grpc_code="OK"})')
        assert worker_calls, "no worker call counted"
        families = readme_metric_families(args.readme)
        assert families, "the README has no metrics table"
        for family in families:
            found = prometheus.query(f'count({{__name__=~"{family}(_bucket|_count|_sum)?"}})')
            assert found and float(found[0]["value"][1]) > 0, f"README family {family}: no samples in Prometheus"
        for name, address in metrics.items():
            problems = promtool_check_metrics(scrape(address))
            assert not problems, f"promtool check metrics, {name}: {problems}"
        print("prometheus: families", families, "have samples; worker calls", worker_calls, flush=True)
    except BaseException:
        print("".join(output))
        for name in ("registry", "worker", "dispatcher"):
            log = os.path.join(work, "stack", "logs", name + ".log")
            if os.path.exists(log):
                print(f"--- {name}.log\n" + open(log).read()[-4000:])
        up.kill()
        if prometheus is not None:
            prometheus.__exit__(None, None, None)
            print("--- prometheus.log\n" + open(prometheus.log).read()[-3000:])
        raise
    prometheus.__exit__(None, None, None)
    # Ctrl-C stops the whole stack cleanly.
    up.send_signal(signal.SIGINT)
    rc = up.wait(timeout=120)
    assert rc == 0, f"t2 up exited {rc}"
    print("python client test: OK")


if __name__ == "__main__":
    main()
