"""Workers found by DNS, for real on loopback.

A small DNS server (dnslib) answers the name `workers.t2.test` with a list of 127.0.0.x
addresses that the test changes; behind each address a Python gRPC worker (the t2.v1.Worker
API from proto/, with grpc.health.v1) answers every Generate with its own address. A real
t2-dispatcher (with a real t2-registry) is given `--worker dns://127.0.0.1:PORT/workers.t2.test:PORT`
and a client keeps sending requests while workers are added to and removed from the DNS
answer: each change must show in where the requests go, no request may fail, and a worker
removed from DNS gets no new requests.

usage: dns_workers_test.py --dispatcher PATH --registry PATH --proto-dir DIR
"""
import argparse
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

NAME = "workers.t2.test."
ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


class Answers(BaseResolver):
    """A records for NAME: whatever `current` holds when asked."""

    def __init__(self):
        self.lock = threading.Lock()
        self.current = []

    def set(self, addresses):
        with self.lock:
            self.current = list(addresses)

    def resolve(self, request, handler):
        reply = request.reply()
        if str(request.q.qname) == NAME and request.q.qtype == QTYPE.A:
            with self.lock:
                for ip in self.current:
                    reply.add_answer(RR(NAME, QTYPE.A, rdata=A(ip), ttl=1))
        return reply


def free_port_on_all(hosts):
    """A port free on every one of `hosts` (the workers share one port, as behind a Service)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for h in hosts[1:]:
                with socket.socket() as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on all of " + ", ".join(hosts))


def wait_for(predicate, what, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dispatcher", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--proto-dir", required=True)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="t2-dns-workers-")
    gen = os.path.join(work, "gen")
    os.makedirs(gen)
    from grpc_tools import protoc
    protos = [os.path.join("t2", "v1", f) for f in ("common.proto", "registry.proto", "dispatcher.proto", "worker.proto")]
    assert protoc.main(["protoc", f"-I{args.proto_dir}", f"--python_out={gen}", f"--grpc_python_out={gen}"] + protos) == 0
    sys.path.insert(0, gen)
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    common = importlib.import_module("t2.v1.common_pb2")
    worker_pb2 = importlib.import_module("t2.v1.worker_pb2")
    worker_grpc = importlib.import_module("t2.v1.worker_pb2_grpc")
    dispatcher_pb2 = importlib.import_module("t2.v1.dispatcher_pb2")
    dispatcher_grpc = importlib.import_module("t2.v1.dispatcher_pb2_grpc")

    class Worker(worker_grpc.WorkerServicer):
        def __init__(self, ip):
            self.ip = ip
            self.calls = 0
            self.lock = threading.Lock()

        def Generate(self, request, context):
            with self.lock:
                self.calls += 1
            yield worker_pb2.WorkerGenerateResponse(text=f"hello from {self.ip}", finish_reason=common.FINISH_REASON_EOS)

        def Info(self, request, context):
            return worker_pb2.WorkerInfo(max_batch_size=4, max_queue=8, num_layers=2)

    port = free_port_on_all(ADDRESSES)
    workers, servers = {}, []
    for ip in ADDRESSES:
        w = Worker(ip)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        worker_grpc.add_WorkerServicer_to_server(w, server)
        h = health.HealthServicer()
        h.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(h, server)
        server.add_insecure_port(f"{ip}:{port}")
        server.start()
        workers[ip], servers = w, servers + [server]

    answers = Answers()
    answers.set(ADDRESSES[:2])
    dns = DNSServer(answers, port=0, address="127.0.0.1", tcp=False, logger=DNSLogger(logf=lambda _: None))
    dns.start_thread()
    dns_port = dns.server.server_address[1]

    procs = []
    try:
        def start(argv, log):
            p = subprocess.Popen(argv, stdout=open(os.path.join(work, log), "w"), stderr=subprocess.STDOUT)
            procs.append(p)
            return p

        def read_port(path, proc):
            wait_for(lambda: os.path.exists(path) and open(path).read().strip() or proc.poll() is not None,
                     f"{path}", 30)
            assert proc.poll() is None, open(os.path.join(work, os.path.basename(path) + ".log")).read()
            return open(path).read().strip()

        registry = start([args.registry, "--root", os.path.join(work, "registry"), "--listen", "127.0.0.1:0",
                          "--port-file", os.path.join(work, "registry.port"), "--insecure-loopback"], "registry.port.log")
        registry_address = read_port(os.path.join(work, "registry.port"), registry)
        target = f"dns://127.0.0.1:{dns_port}/{NAME.rstrip('.')}:{port}"
        dispatcher = start([args.dispatcher, "--registry", registry_address, "--worker", target,
                            "--listen", "127.0.0.1:0", "--port-file", os.path.join(work, "dispatcher.port"),
                            "--insecure-loopback"],
                           "dispatcher.port.log")
        dispatcher_address = read_port(os.path.join(work, "dispatcher.port"), dispatcher)
        stub = dispatcher_grpc.DispatcherStub(grpc.insecure_channel(dispatcher_address))

        # A client that keeps calling, counting who answered; every call must succeed.
        seen, failures, stop = {}, [], threading.Event()
        seen_lock = threading.Lock()

        def client():
            while not stop.is_set():
                try:
                    r = stub.Generate(dispatcher_pb2.GenerateRequest(prompt="hi", max_new_tokens=4), timeout=10)
                    ip = r.text.rsplit(" ", 1)[-1]
                    with seen_lock:
                        seen[ip] = seen.get(ip, 0) + 1
                except grpc.RpcError as e:
                    failures.append(f"{e.code()}: {e.details()}")
                time.sleep(0.02)

        def answered_by():
            with seen_lock:
                return dict(seen)

        def reset():
            with seen_lock:
                seen.clear()

        clients = [threading.Thread(target=client, daemon=True) for _ in range(2)]
        for c in clients:
            c.start()

        # The first two workers share the requests.
        wait_for(lambda: set(answered_by()) == set(ADDRESSES[:2]), "requests on the two listed workers", 30)
        # A third appears in DNS: it gets requests, without a restart.
        answers.set(ADDRESSES)
        wait_for(lambda: ADDRESSES[2] in answered_by(), "requests on the added worker", 30)
        print("after adding:", answered_by(), flush=True)
        # The first leaves DNS: once the dispatcher has looked again it gets no new request.
        answers.set(ADDRESSES[1:])

        def removed_is_quiet():
            before = workers[ADDRESSES[0]].calls
            time.sleep(1.0)
            return workers[ADDRESSES[0]].calls == before

        wait_for(removed_is_quiet, "no new requests on the worker removed from DNS", 30)
        reset()
        calls_before = workers[ADDRESSES[0]].calls
        time.sleep(3)
        after = answered_by()
        print("after removing:", after, flush=True)
        assert ADDRESSES[0] not in after, f"a worker removed from DNS still gets requests: {after}"
        assert workers[ADDRESSES[0]].calls == calls_before
        assert set(after) == set(ADDRESSES[1:]), after
        stop.set()
        for c in clients:
            c.join(timeout=15)
        assert not failures, f"{len(failures)} requests failed, e.g. {failures[:3]}"
        print("dns workers: OK", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in servers:
            s.stop(0)
        dns.stop()


if __name__ == "__main__":
    main()
