"""Oracle node benchmark on a local automining anvil with the digits model. Prints:

- node overhead per job: request receipt → settlement receipt, minus engine time (median, p99);
- throughput: jobs settled per second with many concurrent requesters, against the rate at which the same
  machine gets bare request transactions mined (no node running), both measured in this run;
- engine overhead: a batch through the node's engine path against a direct `session.run` on the same batch.

usage: .venv/bin/python -m benchmarks.node_bench [--jobs N] [--requesters N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from omnitensor import tensors
from omnitensor.anvil import Anvil, dev_keys
from omnitensor.blobs import BlobStore, blob_uri
from omnitensor.chain import Chain, EventDecoder, Signer
from omnitensor.deploy import DeployParams, deploy
from omnitensor.engines import FORMAT_ONNX, load_engine, rows_independent, run_batch
from omnitensor.keys import account_from_key
from oracle import demo
from oracle.background import BackgroundNode
from oracle.settings import NodeSettings

OMNIT = 10**18
ZERO = b"\x00" * 32


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Bench:
    def __init__(self, anvil: Anvil, tmp: Path) -> None:
        self.chain = Chain(anvil.url)
        self.tmp = tmp
        self.manifest, _ = deploy(self.chain, account_from_key(dev_keys()[0]), DeployParams(), tmp / "m.json")
        self.admin = Signer.from_key(self.chain, dev_keys()[0])
        self.token = self.chain.contract("OmniToken", self.manifest.token)
        self.market = self.chain.contract("ComputeMarket", self.manifest.market)
        self.registry = self.chain.contract("Registry", self.manifest.registry)
        self.events = EventDecoder("ComputeMarket")
        self.blobs = BlobStore(tmp / "blobs")
        self.data = demo.digits()
        self.model = demo.digits_onnx(self.data)
        digest = self.blobs.put(self.model)
        receipt = self.admin.send(self.registry.functions.registerModel(digest, FORMAT_ONNX, OMNIT // 50,
                                                                       blob_uri(digest), "digits"))
        self.model_id = self.events_of(receipt, "Registry", "ModelRegistered")[0]["modelId"]
        self.node_key = dev_keys()[1]
        self.node_address = account_from_key(self.node_key).address
        self.admin.send(self.token.functions.transfer(self.node_address, 100 * OMNIT))
        self.requesters = [Signer.from_key(self.chain, k) for k in dev_keys()[2:]]
        for r in self.requesters:
            self.admin.send(self.token.functions.transfer(r.address, 10_000 * OMNIT))
            r.send(self.token.functions.approve(self.manifest.market, 2**255))
            r.send(self.market.functions.deposit(10_000 * OMNIT))

    def events_of(self, receipt: dict[str, Any], contract: str, name: str) -> list[dict[str, Any]]:
        decoder = EventDecoder(contract)
        return [e.args for e in decoder.decode_all(receipt["logs"]) if e.name == name]

    def register_node_directly(self) -> None:
        signer = Signer.from_key(self.chain, self.node_key)
        signer.send(self.token.functions.approve(self.manifest.market, 100 * OMNIT))
        signer.send(self.market.functions.registerNode(100 * OMNIT, OMNIT // 100, OMNIT // 1000))

    def open_job(self, requester: Signer, rows: int = 1) -> tuple[int, float]:
        feeds = {"input": self.data.x_test[:rows]}
        fn = self.market.functions.openJob(self.model_id, self.node_address, 10 * OMNIT,
                                           int(time.time()) + 3600, ZERO, tensors.encode(feeds))
        receipt = requester.send(fn)
        (opened,) = [e.args for e in self.events.decode_all(receipt["logs"]) if e.name == "JobOpened"]
        return opened["jobId"], time.time()

    def concurrent_requests(self, jobs: int, requesters: int) -> tuple[float, list[tuple[int, float]]]:
        """Opens `jobs` jobs from `requesters` threads; returns (seconds, [(job id, receipt time)])."""
        per = jobs // requesters
        start = time.perf_counter()
        with ThreadPoolExecutor(requesters) as pool:
            results = list(pool.map(lambda r: [self.open_job(r) for _ in range(per)], self.requesters[:requesters]))
        return time.perf_counter() - start, [item for chunk in results for item in chunk]


def wait_settled(node: Any, job_ids: list[int], timeout: float) -> dict[int, tuple[float, float]]:
    wanted = set(job_ids)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = {j: (t, e) for j, t, e in list(node.recent) if j in wanted}
        if len(done) == len(wanted):
            return done
        time.sleep(0.005)
    raise TimeoutError(f"{len(wanted) - len(done)} of {len(wanted)} jobs not settled within {timeout}s")


def engine_overhead(bench: Bench, batch: int, repeats: int = 200) -> dict[str, float]:
    session = ort.InferenceSession(bench.model, providers=["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory() as folder:  # engines load from the model's file, as from the blob store
        path = Path(folder) / "model.onnx"
        path.write_bytes(bench.model)
        engine = load_engine(FORMAT_ONNX, path, "cpu")
    stack = rows_independent(engine)
    x = bench.data.x_test[:batch]
    per_job = [{"input": x[i:i + 1]} for i in range(batch)]

    def direct() -> None:
        session.run(None, {"input": x})

    def node_path() -> None:
        run_batch(engine, per_job, stack=stack)  # the node's path: stack the jobs, one run, split the outputs

    timings: dict[str, list[float]] = {"direct": [], "node": []}
    for _ in range(20):
        direct(), node_path()
    for _ in range(repeats):  # interleaved, so machine noise hits both alike
        for name, fn in (("direct", direct), ("node", node_path)):
            t = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - t)
    d, n = statistics.median(timings["direct"]), statistics.median(timings["node"])
    return {"batch": batch, "direct_ms": d * 1000, "node_ms": n * 1000, "overhead": n / d - 1}


def node_settings(bench: Bench, **overrides: Any) -> NodeSettings:
    values: dict[str, Any] = {
        "rpc_url": bench.chain.rpc_url, "private_key": bench.node_key, "manifest": bench.tmp / "m.json",
        "blob_dir": bench.blobs.root, "state_db": bench.tmp / "node.db", "metrics_port": 0, "poll_interval": 0.005,
        "max_batch": 64, "device": "cpu"}
    return NodeSettings(**{**values, **overrides})


def latency(bench: Bench, node: Any, jobs: int) -> list[float]:
    """Node overhead per job, one job at a time: request receipt → settlement receipt − engine time (ms)."""
    overheads = []
    for _ in range(jobs):
        job_id, t0 = bench.open_job(bench.requesters[0])
        settled_at, engine_s = wait_settled(node, [job_id], 30)[job_id]
        overheads.append((settled_at - t0 - engine_s) * 1000)
    return overheads


def throughput(bench: Bench, node: Any, jobs: int, requesters: int) -> float:
    """Jobs settled per second while `requesters` threads open `jobs` jobs."""
    start = time.perf_counter()
    _, opened = bench.concurrent_requests(jobs, requesters)
    wait_settled(node, [j for j, _ in opened], 300)
    return jobs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--requesters", type=int, default=8)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, Anvil() as anvil:
        bench = Bench(anvil, Path(tmp))
        bench.register_node_directly()
        # Baseline: bare request transactions mined, no node running.
        seconds, _ = bench.concurrent_requests(args.jobs, args.requesters)
        baseline = args.jobs / seconds
        background = BackgroundNode(node_settings(bench))
        try:
            wait_settled(background.node, [], 1)
            overheads = latency(bench, background.node, args.latency_jobs)
            settled_per_s = throughput(bench, background.node, args.jobs, args.requesters)
        finally:
            background.stop()
        report["latency_overhead_ms"] = {"median": statistics.median(overheads), "p99": percentile(overheads, 99),
                                         "jobs": len(overheads)}
        report["throughput"] = {"requests_mined_per_s": baseline, "jobs_settled_per_s": settled_per_s,
                                "ratio": settled_per_s / baseline, "jobs": args.jobs, "requesters": args.requesters}
        report["engine"] = [engine_overhead(bench, b) for b in (1, 8, 32, 64)]
    print(json.dumps(report, indent=2))
    lat, thr = report["latency_overhead_ms"], report["throughput"]
    print(f"\nnode overhead per job: median {lat['median']:.1f} ms, p99 {lat['p99']:.1f} ms (target ≤ 20 / ≤ 100)")
    print(f"throughput: {thr['jobs_settled_per_s']:.0f} jobs settled/s vs {thr['requests_mined_per_s']:.0f} bare "
          f"requests mined/s: ratio {thr['ratio']:.2f} (target ≥ 0.5)")
    for e in report["engine"]:
        print(f"engine batch {e['batch']:>2}: direct {e['direct_ms']:.3f} ms, node path {e['node_ms']:.3f} ms, "
              f"overhead {e['overhead'] * 100:+.1f} % (target ≤ 10 %)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
