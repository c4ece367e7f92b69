#!/usr/bin/env python3
"""An independent KEDA-like client for slo-scaler, written against grpcio.

It knows only KEDA's proto (stubs generated from proto/ at run time) and GET /models.

Modes:
  load     replays KEDA's order (GetMetricSpec -> GetMetrics -> IsActive under one 3 s
           deadline) for --scaledobjects ScaledObjects over one channel while --streams
           StreamIsActive streams are open, asserting every answer, plus bad input.
  sigterm  opens --streams streams, prints READY, and asserts that every stream ends
           with status OK (the test sends SIGTERM to the server).

Prints a JSON report on stdout; exits 1 on any failed assertion.
"""
import argparse
import asyncio
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_stubs():
    out = tempfile.mkdtemp(prefix="keda-stubs-")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "proto"),
         f"--python_out={out}", f"--grpc_python_out={out}", "externalscaler.proto"],
        check=True,
    )
    sys.path.insert(0, out)
    import externalscaler_pb2 as pb  # noqa: E402
    import externalscaler_pb2_grpc as pbg  # noqa: E402
    return pb, pbg


NAME_RE = re.compile(r"^[a-z0-9-]+$")


class Checker:
    def __init__(self):
        self.failures = []
        self.checks = 0

    def check(self, cond, what):
        self.checks += 1
        if not cond and len(self.failures) < 50:
            self.failures.append(what)


def triggers_from_models(http):
    with urllib.request.urlopen(f"{http}/models", timeout=5) as r:
        body = json.load(r)
    triggers = []
    for m in body["models"]:
        triggers.append((m["name"], None))
        for v in m["variants"]:
            triggers.append((m["name"], v))
    return body, triggers


def sor(pb, model, variant, threshold=None, i=0):
    md = {"scalerAddress": "slo-scaler.keda:9090", "enableTLS": "false"}
    if model is not None:
        md["model"] = model
    if variant is not None:
        md["variant"] = variant
    if threshold is not None:
        md["activationThreshold"] = threshold
    return pb.ScaledObjectRef(name=f"so-{i}", namespace="default", scalerMetadata=md)


async def keda_sequence(pb, stub, c, model, variant, threshold, i, latencies):
    import grpc
    ref = sor(pb, model, variant, threshold, i)
    started = time.monotonic()
    deadline = started + 3.0
    try:
        spec = await stub.GetMetricSpec(ref, timeout=deadline - time.monotonic())
        c.check(len(spec.metricSpecs) == 1, f"{model}/{variant}: one spec, got {len(spec.metricSpecs)}")
        s = spec.metricSpecs[0]
        c.check(bool(NAME_RE.match(s.metricName)), f"spec name {s.metricName!r} not [a-z0-9-]")
        c.check(s.targetSizeFloat == 1.0 and s.targetSize == 1, f"target {s.targetSizeFloat}/{s.targetSize}")
        # KEDA passes the name back; old versions lowercased, so vary the case.
        name = s.metricName.upper() if i % 3 == 0 else s.metricName
        m = await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref, metricName=name),
                                  timeout=deadline - time.monotonic())
        c.check(len(m.metricValues) == 1, f"{model}/{variant}: exactly one value, got {len(m.metricValues)}")
        v = m.metricValues[0]
        f = v.metricValueFloat
        c.check(math.isfinite(f) and f >= 0, f"value {f} finite and >= 0")
        c.check(abs(f * 1000 - round(f * 1000)) < 1e-6, f"value {f} has milli precision")
        c.check(v.metricValue == int(math.floor(f + 0.5)), f"int mirror {v.metricValue} of {f}")
        a = await stub.IsActive(ref, timeout=deadline - time.monotonic())
        thr = float(threshold) if threshold is not None else 0.0
        c.check(a.result == (f > thr), f"{model}/{variant}: IsActive {a.result} but value {f} vs threshold {thr}")
    except grpc.aio.AioRpcError as e:
        c.check(False, f"{model}/{variant}: {e.code()} {e.details()}")
        return None
    elapsed = time.monotonic() - started
    c.check(elapsed < 3.0, f"sequence took {elapsed:.3f} s")
    latencies.append(elapsed)
    return f


async def bad_input(pb, stub, c):
    import grpc

    async def expect(coro, code, needle, what):
        try:
            await coro
            c.check(False, f"{what}: expected {code}, got OK")
        except grpc.aio.AioRpcError as e:
            c.check(e.code() == code, f"{what}: expected {code}, got {e.code()} {e.details()}")
            c.check(needle in (e.details() or ""), f"{what}: message {e.details()!r} lacks {needle!r}")

    await expect(stub.GetMetricSpec(sor(pb, None, None), timeout=3), grpc.StatusCode.INVALID_ARGUMENT, "model", "missing model")
    await expect(stub.IsActive(sor(pb, "m", None, "x"), timeout=3), grpc.StatusCode.INVALID_ARGUMENT, "activationThreshold", "bad threshold")
    await expect(stub.GetMetrics(pb.GetMetricsRequest(metricName="x"), timeout=3), grpc.StatusCode.INVALID_ARGUMENT, "scaledObjectRef", "missing ref")
    await expect(stub.GetMetricSpec(sor(pb, "no-such-model", None), timeout=3), grpc.StatusCode.NOT_FOUND, "no-such-model", "unknown model")
    await expect(stub.StreamMetricSpec(sor(pb, "x", None), timeout=3).read(), grpc.StatusCode.UNIMPLEMENTED, "", "StreamMetricSpec")


async def run_load(args, pb, pbg):
    import grpc
    c = Checker()
    body, triggers = triggers_from_models(args.http)
    c.check(len(triggers) > 0, "GET /models lists models")
    async with grpc.aio.insecure_channel(args.addr) as channel:
        stub = pbg.ExternalScalerStub(channel)
        # Open the streams first, each reading its first (current-state) message.
        streams = []
        firsts = []
        for i in range(args.streams):
            model, variant = triggers[i % len(triggers)]
            call = stub.StreamIsActive(sor(pb, model, variant, None, i))
            streams.append((call, model, variant))
        for call, model, variant in streams:
            msg = await asyncio.wait_for(call.read(), timeout=5)
            c.check(msg is not grpc.aio.EOF, f"stream {model}/{variant}: first message")
            firsts.append((model, variant, None if msg is grpc.aio.EOF else msg.result))
        # 200 ScaledObjects polling in KEDA's order, concurrently, several rounds.
        latencies = []
        thresholds = [None, "0", "0.5", "2"]
        for _round in range(args.rounds):
            jobs = []
            for i in range(args.scaledobjects):
                model, variant = triggers[i % len(triggers)]
                jobs.append(keda_sequence(pb, stub, c, model, variant, thresholds[i % 4], i, latencies))
            await asyncio.gather(*jobs)
        # Stream states agree with IsActive (demand is constant in this config).
        for model, variant, first in firsts[: len(triggers)]:
            a = await stub.IsActive(sor(pb, model, variant), timeout=3)
            c.check(first == a.result, f"stream {model}/{variant} said {first}, IsActive {a.result}")
        await bad_input(pb, stub, c)
        # gRPC health through grpcio-health-checking's own stubs: another independent client.
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", "externalscaler.ExternalScaler"]:
            h = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
            c.check(h.status == health_pb2.HealthCheckResponse.SERVING, f"health {service!r}: {h.status}")
        for call, _, _ in streams:
            call.cancel()
    latencies.sort()
    report = {
        "mode": "load",
        "checks": c.checks,
        "failures": c.failures,
        "sequences": len(latencies),
        "streams": args.streams,
        "p50_ms": round(1e3 * latencies[len(latencies) // 2], 3) if latencies else None,
        "p99_ms": round(1e3 * latencies[int(len(latencies) * 0.99)], 3) if latencies else None,
    }
    return report


async def run_sigterm(args, pb, pbg):
    import grpc
    c = Checker()
    _, triggers = triggers_from_models(args.http)
    async with grpc.aio.insecure_channel(args.addr) as channel:
        stub = pbg.ExternalScalerStub(channel)
        calls = []
        for i in range(args.streams):
            model, variant = triggers[i % len(triggers)]
            call = stub.StreamIsActive(sor(pb, model, variant, None, i))
            msg = await asyncio.wait_for(call.read(), timeout=5)
            c.check(msg is not grpc.aio.EOF, "first message")
            calls.append(call)
        print("READY", flush=True)

        async def drain(call):
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    break
            return await call.code()

        codes = await asyncio.wait_for(asyncio.gather(*(drain(k) for k in calls)), timeout=20)
        for code in codes:
            c.check(code == grpc.StatusCode.OK, f"stream ended with {code}")
    return {"mode": "sigterm", "checks": c.checks, "failures": c.failures, "streams": len(calls)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--http", required=True)
    ap.add_argument("--mode", choices=["load", "sigterm"], default="load")
    ap.add_argument("--scaledobjects", type=int, default=200)
    ap.add_argument("--streams", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pb, pbg = load_stubs()
    run = run_load if args.mode == "load" else run_sigterm
    report = asyncio.run(run(args, pb, pbg))
    print(json.dumps(report), flush=True)
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
