"""What running models in sandboxed worker processes (`omnitensor.sandbox`) costs, each figure beside a baseline
measured in the same run:

- engine time per call at batch 1, a ~20M-parameter sentence encoder (ONNX, weights inside the file): through
  `EnginePool.run` (a worker process; safetensors in and out over pipes) against the same work in-process
  (`load_engine`, then decode → check → `engine.run` → encode per call); overhead = (isolated − in-process) medians
  ÷ in-process median; the same for a one-Add model, whose difference is the worker's fixed cost per call;
- node overhead per job on an automining chain, the node running its model in a worker: node_bench's definition
  and code (request receipt → settlement receipt − engine time);
- resident memory for a ~420 MB ONNX model: this side (a parent holding an EnginePool) plus its worker, summed
  from /proc/<pid>/statm every 5 ms while loading and running (peak) and after a run while cached (steady),
  ÷ the file's size, against the old in-process `ort.InferenceSession(path.read_bytes())` and against
  `load_engine` in-process; each in a process of its own, so the measurements do not mix.

usage: .venv/bin/python -m benchmarks.isolation_bench [--calls N] [--jobs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from omnitensor import tensors
from omnitensor.engines import FORMAT_ONNX, check_feeds, load_engine
from omnitensor.paths import ROOT
from omnitensor.sandbox import EnginePool, Limits, Worker

_PAGE = os.sysconf("SC_PAGE_SIZE")
ENCODER = {"vocab": 8192, "width": 512, "layers": 5, "heads": 8, "ffn": 2048, "tokens": 16}
BIG = {"matrices": 4, "width": 5120}  # 4 float32 5120×5120 MatMul weights: 419 MB
TARGETS = {"engine_overhead": 0.10, "node_median_ms": 20.0, "node_p99_ms": 100.0, "peak_ratio": 1.5}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"median_ms": statistics.median(ms), "p99_ms": percentile(ms, 99), "n": len(ms)}


# ── models ───────────────────────────────────────────────────────────────────
def build_encoder(path: Path) -> dict[str, Any]:
    """A small sentence encoder (token embedding, post-norm transformer layers, mean pooling) exported with the
    TorchScript-based exporter, weights inside the .onnx file. Returns its parameter count and file size."""
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self, width: int, heads: int, ffn: int) -> None:
            super().__init__()
            self.heads = heads
            self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.up, self.down = nn.Linear(width, ffn), nn.Linear(ffn, width)
            self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, d = x.shape
            q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            attention = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1) @ v
            x = self.norm1(x + self.out(attention.transpose(1, 2).reshape(b, t, d)))
            return self.norm2(x + self.down(torch.relu(self.up(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(ENCODER["vocab"], ENCODER["width"])
            self.layers = nn.ModuleList(Layer(ENCODER["width"], ENCODER["heads"], ENCODER["ffn"])
                                        for _ in range(ENCODER["layers"]))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.embed(ids)
            for layer in self.layers:
                x = layer(x)
            return x.mean(dim=1)

    torch.manual_seed(0)
    model = Encoder().eval()
    ids = torch.zeros((1, ENCODER["tokens"]), dtype=torch.int64)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(model, (ids,), str(path), input_names=["input_ids"], output_names=["embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
                          dynamo=False)
    return {"parameters": sum(p.numel() for p in model.parameters()), "file_bytes": path.stat().st_size}


def build_big(path: Path) -> None:
    """A chain of large MatMuls, random float32 weights inside the .onnx file (run in a child process, so that
    building it leaves no memory behind in the process that measures)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width, rng = BIG["width"], np.random.default_rng(0)
    initializers, nodes, x = [], [], "x"
    for i in range(BIG["matrices"]):
        weight = rng.standard_normal((width, width), dtype=np.float32) / np.float32(np.sqrt(width))
        initializers.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"]))
        x = f"h{i}"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", width])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))


# ── 1. engine time through the worker, batch 1 ───────────────────────────────
def build_tiny(path: Path) -> None:
    """One Add on a [batch, 16] float32 input: a model that takes microseconds, so that the time through a
    worker is the sandbox's fixed cost per call."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
                              [numpy_helper.from_array(np.ones((1, 16), np.float32), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))


def engine_overhead(path: Path, payload: bytes, calls: int, block: int = 10) -> dict[str, Any]:
    """Per-call time of one job (`payload`: its safetensors input), in-process against through an EnginePool
    worker, in alternating blocks of `block` calls (each engine's idle threads spin a moment after a run; blocks
    keep that off the other's timings but the first of a block)."""
    engine = load_engine(FORMAT_ONNX, path, "cpu")

    def in_process() -> bytes:
        feeds = tensors.decode(payload)
        check_feeds(engine, feeds)
        return tensors.encode(engine.run(feeds))

    pool = EnginePool(Limits(), device="cpu")
    engine_s: list[float] = []

    def isolated() -> bytes:
        (result,) = pool.run("encoder", path, FORMAT_ONNX, [payload])
        if result.failure is not None:
            raise RuntimeError(f"the worker failed the job: {result.failure.name} {result.message}")
        engine_s.append(result.engine_s)
        return result.output

    try:
        started = time.perf_counter()
        isolated()  # starts the worker and loads the model
        cold_s = time.perf_counter() - started
        ours, theirs = tensors.decode(in_process()), tensors.decode(isolated())
        for name, value in ours.items():  # the same model, both ways
            np.testing.assert_allclose(theirs[name], value, rtol=1e-5, atol=1e-6)
        for _ in range(block):
            in_process(), isolated()
        engine_s.clear()
        timings: dict[str, list[float]] = {"in_process": [], "isolated": []}
        for _ in range(max(1, calls // block)):
            for name, fn in (("in_process", in_process), ("isolated", isolated)):
                for _ in range(block):
                    t = time.perf_counter()
                    fn()
                    timings[name].append(time.perf_counter() - t)
    finally:
        pool.close()
    base, iso = summary(timings["in_process"]), summary(timings["isolated"])
    return {"in_process": base, "isolated": iso, "worker_engine": summary(engine_s),
            "overhead": (iso["median_ms"] - base["median_ms"]) / base["median_ms"],
            "overhead_ms": iso["median_ms"] - base["median_ms"], "first_call_s": cold_s,
            "payload_bytes": len(payload)}


# ── 2. node overhead per job ─────────────────────────────────────────────────
def node_overhead(jobs: int, warmup: int = 3) -> dict[str, Any]:
    """node_bench's latency measurement on a fresh automining chain, the node as it is (models in workers). The
    first jobs start the worker and load the model; they are reported apart."""
    from benchmarks.node_bench import Bench, latency, node_settings
    from omnitensor.anvil import Anvil
    from oracle.background import BackgroundNode

    with tempfile.TemporaryDirectory() as tmp, Anvil() as anvil:
        bench = Bench(anvil, Path(tmp))
        bench.register_node_directly()
        background = BackgroundNode(node_settings(bench))
        try:
            cold = latency(bench, background.node, warmup)
            samples = latency(bench, background.node, jobs)
        finally:
            background.stop()
    return node_summary(samples, cold[0])


def node_summary(samples_ms: list[float], first_ms: float | None = None) -> dict[str, Any]:
    return {"median_ms": statistics.median(samples_ms), "p99_ms": percentile(samples_ms, 99), "jobs": len(samples_ms),
            "first_job_ms": first_ms}


# ── 3. memory ────────────────────────────────────────────────────────────────
def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _children(pid: int) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return found


class Sampler:
    """Sums the resident memory of this process and (with `children`) its child processes every `interval`
    seconds from a thread, keeping the peak; children are looked for every tenth sample."""

    def __init__(self, children: bool, interval: float = 0.005) -> None:
        self.children, self.interval = children, interval
        self.pids = {os.getpid()}
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        return sum(_rss(pid) for pid in self.pids)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.children and self.samples % 10 == 0:
                self.pids |= _children(os.getpid())
            self.peak = max(self.peak, self.now())
            self.samples += 1
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_child(mode: str, path: Path) -> dict[str, Any]:
    """In a fresh process: load the model at `path` one way, run it once, and report resident growth."""
    x = np.ones((1, BIG["width"]), np.float32)
    payload = tensors.encode({"x": x})
    report: dict[str, Any] = {"mode": mode}
    if mode != "isolated":  # loaded in-process, the runtime is imported before any model (the old node did so)
        import onnxruntime  # noqa: F401
    if mode == "isolated":  # what a worker holds before any model: the interpreter and ONNX Runtime
        worker = Worker(FORMAT_ONNX, "cpu", Limits())
        report["worker_at_rest_bytes"] = worker.rss()
        worker.kill()
    keep: list[Any] = []
    with Sampler(children=mode == "isolated") as sampler:
        base = sampler.now()
        started = time.perf_counter()
        if mode == "isolated":
            pool = EnginePool(Limits(), device="cpu")
            (result,) = pool.run("big", path, FORMAT_ONNX, [payload])
            if result.failure is not None:
                raise RuntimeError(f"the worker failed the job: {result.failure.name} {result.message}")
            keep.append(pool)
        elif mode == "in_process":
            engine = load_engine(FORMAT_ONNX, path, "cpu")
            engine.run(tensors.decode(payload))
            keep.append(engine)
        elif mode == "old":
            import onnxruntime as ort

            data = path.read_bytes()
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            del data
            session.run(None, {"x": x})
            keep.append(session)
        else:
            raise ValueError(mode)
        report["load_and_run_s"] = time.perf_counter() - started
        time.sleep(0.5)  # the model stays cached (the worker, engine or session is kept)
        steady = sampler.now()
    report.update(base_bytes=base, peak_growth_bytes=max(sampler.peak, steady) - base,
                  steady_growth_bytes=steady - base, processes=len(sampler.pids), samples=sampler.samples)
    for item in keep:
        if isinstance(item, EnginePool):
            item.close()
    return report


def memory(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    rows = {}
    for mode in ("old", "in_process", "isolated"):
        code = ("import json, sys; from pathlib import Path; from benchmarks.isolation_bench import memory_child; "
                "print(json.dumps(memory_child(sys.argv[1], Path(sys.argv[2]))))")
        done = subprocess.run([sys.executable, "-c", code, mode, str(path)], cwd=ROOT, capture_output=True,
                              text=True, check=True, timeout=600)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["peak_ratio"] = row["peak_growth_bytes"] / size
        row["steady_ratio"] = row["steady_growth_bytes"] / size
        rows[mode] = row
    return {"file_bytes": size, **rows}


# ── the whole benchmark ──────────────────────────────────────────────────────
def run(calls: int = 300, jobs: int = 100, node: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every measurement; `node` instead of `jobs`: node overhead figures measured elsewhere in the same run."""
    report: dict[str, Any] = {"targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Path(tmp) / "encoder.onnx"
        report["encoder"] = {**build_encoder(encoder), **ENCODER}
        ids = np.random.default_rng(0).integers(0, ENCODER["vocab"], (1, ENCODER["tokens"]), dtype=np.int64)
        report["engine"] = engine_overhead(encoder, tensors.encode({"input_ids": ids}), calls)
        tiny = Path(tmp) / "tiny.onnx"
        build_tiny(tiny)
        report["fixed_cost"] = engine_overhead(tiny, tensors.encode({"x": np.ones((1, 16), np.float32)}), calls)
        big = Path(tmp) / "big.onnx"
        code = "import sys; from pathlib import Path; from benchmarks.isolation_bench import build_big; " \
               "build_big(Path(sys.argv[1]))"
        subprocess.run([sys.executable, "-c", code, str(big)], cwd=ROOT, check=True, timeout=600)
        report["memory"] = memory(big)
    report["node"] = node if node is not None else node_overhead(jobs)
    return report


def table(r: dict[str, Any]) -> list[str]:
    """The Markdown table of the results."""
    enc, eng, fixed, node, mem = r["encoder"], r["engine"], r["fixed_cost"], r["node"], r["memory"]
    old, inp, iso = mem["old"], mem["in_process"], mem["isolated"]
    mb = mem["file_bytes"] / 1e6
    mib = 2**20
    return [
        "| measure | isolated | baseline (same run) | ratio | target |", "|---|---|---|---|---|",
        f"| engine time per call, batch 1: {enc['parameters'] / 1e6:.1f}M-parameter encoder "
        f"({enc['file_bytes'] / 1e6:.0f} MB ONNX, {enc['tokens']} tokens) | median "
        f"{eng['isolated']['median_ms']:.2f} ms, p99 {eng['isolated']['p99_ms']:.2f} ms | in-process: median "
        f"{eng['in_process']['median_ms']:.2f} ms, p99 {eng['in_process']['p99_ms']:.2f} ms | "
        f"{eng['overhead'] * 100:+.1f} % ({eng['overhead_ms']:+.2f} ms) | ≤ {TARGETS['engine_overhead'] * 100:.0f} % |",
        f"| the worker's fixed cost per call: a one-Add model | median {fixed['isolated']['median_ms']:.3f} ms, p99 "
        f"{fixed['isolated']['p99_ms']:.3f} ms | in-process: median {fixed['in_process']['median_ms']:.3f} ms, p99 "
        f"{fixed['in_process']['p99_ms']:.3f} ms | {fixed['overhead_ms']:+.3f} ms a call | — |",
        f"| node overhead per job, automine (request receipt → settlement receipt − engine time) | median "
        f"{node['median_ms']:.1f} ms, p99 {node['p99_ms']:.1f} ms ({node['jobs']} jobs) | — | "
        f"{node['median_ms'] / TARGETS['node_median_ms']:.2f} / {node['p99_ms'] / TARGETS['node_p99_ms']:.2f} of "
        f"target | ≤ {TARGETS['node_median_ms']:.0f} / ≤ {TARGETS['node_p99_ms']:.0f} ms |",
        f"| memory, {mb:.0f} MB ONNX: peak growth, loading and running (parent + worker) | "
        f"{iso['peak_growth_bytes'] / mib:.0f} MiB = {iso['peak_ratio']:.2f}× file | old in-process "
        f"`InferenceSession(read_bytes())`: {old['peak_growth_bytes'] / mib:.0f} MiB = {old['peak_ratio']:.2f}×; "
        f"`load_engine` in-process: {inp['peak_ratio']:.2f}× | {iso['peak_ratio'] / old['peak_ratio']:.2f}× the old | "
        f"≤ {TARGETS['peak_ratio']}× file |",
        f"| memory, same: steady after a run, model cached | {iso['steady_growth_bytes'] / mib:.0f} MiB = "
        f"{iso['steady_ratio']:.2f}× file (a worker at rest: {iso['worker_at_rest_bytes'] / mib:.0f} MiB) | old: "
        f"{old['steady_growth_bytes'] / mib:.0f} MiB = {old['steady_ratio']:.2f}×; `load_engine` in-process: "
        f"{inp['steady_ratio']:.2f}× | {iso['steady_ratio'] / old['steady_ratio']:.2f}× the old | — |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="timed calls per side for the engine overhead")
    parser.add_argument("--jobs", type=int, default=100, help="jobs for the node overhead")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = run(args.calls, args.jobs)
    eng = report["engine"]
    print("\n".join(table(report)))
    print(f"\nthrough the worker, time inside its engine (decode → run → encode excluded): median "
          f"{eng['worker_engine']['median_ms']:.2f} ms; first call (worker start + model load) "
          f"{eng['first_call_s']:.2f} s; "
          f"node's first job (worker start + load) {report['node']['first_job_ms']:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
