"""The benchmark suite: every benchmark on the local network, one report — Markdown for people, JSON for
machines, PNG plots — each figure beside a baseline measured in the same run.

usage: scripts/bench.sh [--out DIR] [--quick]      (default DIR: build/bench-report)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import torch

from benchmarks import api_bench, isolation_bench
from benchmarks.node_bench import Bench, engine_overhead, latency, node_settings, percentile, wait_settled
from omnitensor.anvil import Anvil, free_port, node_binary
from omnitensor.engines import cuda_available
from omnitensor.paths import ROOT
from oracle.background import BackgroundNode
from oracle.process import NodeProcess

PEERS = {  # published figures of comparable systems, from their own test suites
    "openJob_input128": "Ritual Infernet create 142k; Chainlink Functions sendRequest 286k",
    "fulfil_output64": "Infernet create+deliver 353k; Chainlink Functions fulfill 335k",
}
CONCURRENCY = (1, 2, 4, 8)
BATCHES = (1, 2, 4, 8, 16, 32, 64)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def environment() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    anvil = subprocess.run([str(node_binary("anvil")), "--version"], capture_output=True, text=True).stdout.strip()
    versions = {p: version(p) for p in ("onnxruntime", "torch", "web3", "fastapi", "uvicorn", "numpy")}
    return {"machine": f"{cpu}, {os.cpu_count()} cores, {mem / 2**20:.0f} GiB", "os": platform.platform(),
            "python": sys.version.split()[0], "anvil": anvil.splitlines()[0] if anvil else "?",
            "solc": json.loads((ROOT / "node_modules/solc/package.json").read_text())["version"], **versions,
            "device": "GPU (CUDA)" if cuda_available() else "CPU (no CUDA device)"}


def gas() -> list[dict[str, Any]]:
    """The gas snapshot (tests/contracts/test_gas.py fails when a measurement moves, so it is current)."""
    snapshot = json.loads((ROOT / "contracts" / "gas-snapshot.json").read_text())
    return [{"operation": k, "gas": v, "peers": PEERS.get(k, "")} for k, v in snapshot.items()]


def node_process(bench: Bench, tmp: Path) -> NodeProcess:
    """The oracle node as its own process, as operators run it (not sharing an interpreter with the requesters)."""
    return NodeProcess(node_settings(bench, state_db=tmp / "node-process.db", metrics_port=free_port()),
                       tmp / "node.log").start()  # type: ignore[return-value]


def wait_closed(bench: Bench, job_ids: list[int], from_block: int, timeout: float = 600) -> None:
    """Until every job has its JobFulfilled or JobFailed event on-chain. Reads each block's logs once (a
    benchmark that re-read the whole range on every poll would load the chain it measures)."""
    wanted = set(job_ids)
    topics = [[bench.events.topic("JobFulfilled"), bench.events.topic("JobFailed")]]
    end = time.monotonic() + timeout
    while wanted and time.monotonic() < end:
        head = bench.chain.block_number()
        if head >= from_block:
            logs = bench.chain.rpc("eth_getLogs", [{"address": bench.manifest.market, "fromBlock": hex(from_block),
                                                    "toBlock": hex(head), "topics": topics}])
            wanted -= {int(log["topics"][1], 16) for log in logs}
            from_block = head + 1
        time.sleep(0.02)
    if wanted:
        raise TimeoutError(f"{len(wanted)} jobs not settled within {timeout:.0f}s")


def concurrency_sweep(tmp: Path, jobs_per_requester: int) -> tuple[list[dict[str, Any]], float]:
    """Jobs settled per second against bare request transactions mined per second (same chain, no node running),
    per number of requesters, with the CPU each process used: where the time goes. Each level gets a fresh chain
    (anvil mines more slowly as its history grows, which would blur the comparison). Also returns the node's
    peak resident memory (MiB) under this load."""
    rows, memory = [], 0.0
    for requesters in CONCURRENCY:
        jobs = requesters * jobs_per_requester
        folder = tmp / f"sweep-{requesters}"
        folder.mkdir()
        with Anvil() as anvil:
            bench = Bench(anvil, folder)
            bench.register_node_directly()
            seconds, opened = bench.concurrent_requests(jobs, requesters)
            bare = jobs / seconds
            node = node_process(bench, folder)
            pid, node_pid = anvil.process.pid, node.proc.pid  # type: ignore[union-attr]
            try:
                wait_closed(bench, [j for j, _ in opened], 0)  # the baseline's jobs first
                block = bench.chain.block_number()
                cpu = (cpu_seconds(pid), cpu_seconds(node_pid), time.process_time(), time.perf_counter())
                _, opened = bench.concurrent_requests(jobs, requesters)
                wait_closed(bench, [j for j, _ in opened], block)
                wall = time.perf_counter() - cpu[3]
                rows.append({
                    "requesters": requesters, "jobs": jobs, "bare_requests_per_s": bare,
                    "jobs_settled_per_s": jobs / wall, "ratio": jobs / wall / bare,
                    "cpu_anvil_pct": 100 * (cpu_seconds(pid) - cpu[0]) / wall,
                    "cpu_node_pct": 100 * (cpu_seconds(node_pid) - cpu[1]) / wall,
                    "cpu_requesters_pct": 100 * (time.process_time() - cpu[2]) / wall,
                })
                memory = max(memory, api_bench.peak_rss_mib(node_pid))
            finally:
                node.stop()
    return rows, memory


def block_time_latency(tmp: Path, jobs: int) -> dict[str, Any]:
    """With 1-second blocks: how many jobs settle in the block right after their request's block."""
    with Anvil(block_time=1) as anvil:
        bench = Bench(anvil, tmp)
        bench.register_node_directly()
        background = BackgroundNode(node_settings(bench, poll_interval=0.05))
        rows = []
        try:
            for _ in range(jobs):
                job_id, t0 = bench.open_job(bench.requesters[0])
                settled_at, engine_s = wait_settled(background.node, [job_id], 60)[job_id]
                topics = [bench.events.topic("JobOpened"), "0x" + job_id.to_bytes(32, "big").hex()]
                opened = bench.chain.rpc("eth_getLogs", [{"fromBlock": "0x0", "topics": topics}])
                topics[0] = bench.events.topic("JobFulfilled")
                settled = bench.chain.rpc("eth_getLogs", [{"fromBlock": "0x0", "topics": topics}])
                rows.append({"blocks": int(settled[0]["blockNumber"], 16) - int(opened[0]["blockNumber"], 16),
                             "ms": (settled_at - t0 - engine_s) * 1000})
        finally:
            background.stop()
    blocks = [r["blocks"] for r in rows]
    ms = [r["ms"] for r in rows]
    return {"jobs": jobs, "next_block_pct": 100 * blocks.count(1) / len(blocks),
            "blocks_histogram": {str(b): blocks.count(b) for b in sorted(set(blocks))},
            "latency_ms": {"median": statistics.median(ms), "p99": percentile(ms, 99)}, "samples_ms": ms}


def engines(bench: Bench) -> dict[str, Any]:
    """Node path vs direct ONNX Runtime per batch size; ONNX Runtime vs PyTorch on the same weights."""
    rows = [engine_overhead(bench, b, repeats=100) for b in BATCHES]
    graph = onnx.load_from_string(bench.model).graph
    weights = {i.name: torch.from_numpy(onnx.numpy_helper.to_array(i).astype(np.float32)) for i in graph.initializer
               if i.data_type == onnx.TensorProto.FLOAT}
    # The graph's MatMul → Add pairs, in order, are the MLP's layers (ReLU between, softmax at the end).
    matmuls = [n.input[1] for n in graph.node if n.op_type == "MatMul"]
    adds = [n.input[1] for n in graph.node if n.op_type == "Add"]
    modules: list[torch.nn.Module] = []
    for w, b in zip(matmuls, adds, strict=True):
        linear = torch.nn.Linear(*weights[w].shape)
        linear.weight.data, linear.bias.data = weights[w].T.contiguous(), weights[b].reshape(-1)
        modules += [linear, torch.nn.ReLU()]
    modules[-1] = torch.nn.Softmax(dim=1)
    model = torch.jit.script(torch.nn.Sequential(*modules).eval())
    session = ort.InferenceSession(bench.model, providers=["CPUExecutionProvider"])
    comparisons = []
    for batch in BATCHES:
        x = bench.data.x_test[:batch]
        ort_probs = session.run(["probabilities"], {"input": x})[0]
        with torch.no_grad():
            torch_probs = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(torch_probs, ort_probs, rtol=1e-4, atol=1e-6)  # the same model, both ways
        times = {"onnxruntime": [], "torch": []}
        for _ in range(100):
            t = time.perf_counter()
            session.run(None, {"input": x})
            times["onnxruntime"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with torch.no_grad():
                model(torch.from_numpy(x))
            times["torch"].append(time.perf_counter() - t)
        o, p = statistics.median(times["onnxruntime"]) * 1000, statistics.median(times["torch"]) * 1000
        comparisons.append({"batch": batch, "onnxruntime_ms": o, "torch_ms": p, "torch_over_ort": p / o})
    return {"node_vs_direct": rows, "ort_vs_torch": comparisons, "threads": torch.get_num_threads(),
            "cuda": cuda_vs_cpu(bench, model) if cuda_available() else "not measured: no CUDA device on this machine"}


def cuda_vs_cpu(bench: Bench, model: torch.jit.ScriptModule) -> list[dict[str, float]]:
    """Both engines on the GPU against the same on the CPU, per batch size (runs only where CUDA is present)."""
    sessions = {p: ort.InferenceSession(bench.model, providers=[p]) for p in
                ("CUDAExecutionProvider", "CPUExecutionProvider")}
    gpu_model = model.to("cuda")
    rows = []
    for batch in BATCHES:
        x = bench.data.x_test[:batch]
        timings = {}
        for name, run in (
            ("ort_cuda", lambda x=x: sessions["CUDAExecutionProvider"].run(None, {"input": x})),
            ("ort_cpu", lambda x=x: sessions["CPUExecutionProvider"].run(None, {"input": x})),
            ("torch_cuda", lambda x=x: gpu_model(torch.from_numpy(x).to("cuda")).cpu()),  # .cpu() waits for the GPU
        ):
            for _ in range(10):
                run()
            samples = []
            for _ in range(100):
                t = time.perf_counter()
                with torch.no_grad():
                    run()
                samples.append(time.perf_counter() - t)
            timings[f"{name}_ms"] = statistics.median(samples) * 1000
        rows.append({"batch": batch, **timings, "ort_cuda_over_cpu": timings["ort_cuda_ms"] / timings["ort_cpu_ms"]})
    return rows


def plots(report: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].hist(report["node"]["latency_samples_ms"], bins=40, color="tab:blue")
    axes[0].set(title="Node overhead per job, automining chain", xlabel="ms (request receipt → settlement − engine)",
                ylabel="jobs")
    axes[1].hist(report["block_time_1s"]["samples_ms"], bins=20, color="tab:orange")
    axes[1].set(title="Same, 1-second blocks", xlabel="ms", ylabel="jobs")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    files.append("latency.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = report["throughput"]
    x = [r["requesters"] for r in rows]
    ax.plot(x, [r["bare_requests_per_s"] for r in rows], "o-", label="bare request txs mined/s (no node)")
    ax.plot(x, [r["jobs_settled_per_s"] for r in rows], "s-", label="jobs settled/s (node running)")
    ax.set(title="Throughput against load", xlabel="concurrent requesters", ylabel="per second", xscale="log")
    ax.set_xticks(x, [str(v) for v in x])
    ax.minorticks_off()
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    files.append("throughput.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    eng = report["engine"]
    b = [r["batch"] for r in eng["node_vs_direct"]]
    ax.plot(b, [r["direct_ms"] for r in eng["node_vs_direct"]], "o-", label="ONNX Runtime, direct")
    ax.plot(b, [r["node_ms"] for r in eng["node_vs_direct"]], "s-", label="ONNX Runtime, through the node")
    ax.plot(b, [r["torch_ms"] for r in eng["ort_vs_torch"]], "^-", label="PyTorch (TorchScript), same weights")
    ax.set(title="Engine time per batch (CPU)", xlabel="batch size", ylabel="ms", xscale="log", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "engine.png", dpi=110)
    files.append("engine.png")
    plt.close("all")
    return files


def bottleneck(row: dict[str, Any]) -> str:
    """Where the time went at the highest load, from the CPU each process used (% of one core)."""
    use = {"anvil (executing and mining)": row["cpu_anvil_pct"], "the node (Python)": row["cpu_node_pct"],
           "the requesters (signing)": row["cpu_requesters_pct"]}
    busiest = max(use, key=use.__getitem__)
    shares = ", ".join(f"{k} {v:.0f} %" for k, v in use.items())
    total = sum(use.values())
    capacity = (os.cpu_count() or 1) * 100
    if total >= 0.85 * capacity:
        verdict = (f"the machine's CPU is the bottleneck — the three processes share {capacity // 100} cores; "
                   f"{busiest} uses most")
    elif use[busiest] >= 80:
        verdict = f"{busiest} is the bottleneck"
    else:
        verdict = "no process saturated its core; the time goes to round trips between them"
    return (f"At {row['requesters']} requesters: {shares} of a core ({total:.0f} % of the {capacity} % the "
            f"machine has): {verdict}.")


def isolation_headline(iso: dict[str, Any]) -> list[str]:
    eng, mem = iso["engine"], iso["memory"]
    return [
        f"| engine through a sandbox worker, batch 1, {iso['encoder']['parameters'] / 1e6:.0f}M-parameter encoder | "
        f"{eng['overhead'] * 100:+.1f} % ({eng['overhead_ms']:+.2f} ms of {eng['in_process']['median_ms']:.2f} ms) | "
        "in-process `load_engine` | ≤ 10 % |",
        f"| peak memory loading a {mem['file_bytes'] / 1e6:.0f} MB ONNX model (node + worker) | "
        f"{mem['isolated']['peak_ratio']:.2f}× the file | old in-process `InferenceSession(bytes)` "
        f"{mem['old']['peak_ratio']:.2f}× | ≤ 1.5× |",
    ]


def markdown(r: dict[str, Any], files: list[str]) -> str:
    env, node, blocks, http = r["environment"], r["node"], r["block_time_1s"], r["http"]
    top = max(r["throughput"], key=lambda row: row["requesters"])
    eng = r["engine"]
    b1 = eng["node_vs_direct"][0]
    big = eng["node_vs_direct"][-1]
    bal, inf = http["balance_ms"], http["inference_ms"]
    gas = {g["operation"]: g["gas"] for g in r["gas"]}
    lines = [
        "# OmniTensor benchmark report", "",
        f"{env['machine']}; {env['os']}; device: {env['device']}. Python {env['python']}, onnxruntime "
        f"{env['onnxruntime']}, torch {env['torch']}, {env['anvil']}, solc {env['solc']}. "
        f"Generated {r['generated']} in {r['seconds']:.0f} s.", "",
        "## Headline", "",
        "| measure | result | baseline (same run) | target |", "|---|---|---|---|",
        f"| gas: open a job (128-byte input) | {gas['openJob_input128']:,} | Infernet create 142k; Chainlink "
        "sendRequest 286k | ≤ 70k |",
        f"| gas: settle a job (64-byte output) | {gas['fulfil_output64']:,} | Infernet deliver 353k (with create); "
        "Chainlink fulfill 335k | ≤ 50k |",
        f"| node overhead per job, automine | median {node['latency_ms']['median']:.1f} ms, p99 "
        f"{node['latency_ms']['p99']:.1f} ms | engine time excluded | ≤ 20 / ≤ 100 ms |",
        f"| 1-second blocks: settled in the next block | {blocks['next_block_pct']:.0f} % of {blocks['jobs']} jobs | "
        f"— | ≥ 99 % |",
        f"| throughput, {top['requesters']} requesters | {top['jobs_settled_per_s']:.0f} jobs settled/s | "
        f"{top['bare_requests_per_s']:.0f} bare requests mined/s: ratio {top['ratio']:.2f} | ≥ 0.5 |",
        f"| engine overhead, batch 1 / {big['batch']} | {b1['overhead'] * 100:+.1f} % / "
        f"{big['overhead'] * 100:+.0f} % ({big['node_ms'] - big['direct_ms']:+.2f} ms) | direct `session.run` | "
        "≤ 10 % |",
        f"| `GET /account/balance` | median {bal['http']['median']:.2f} ms | eth_call, same client "
        f"{bal['eth_call_same_client']['median']:.2f} ms: {bal['ratio_to_same_client']:.2f}× | ≤ 2× |",
        f"| inference over HTTP − node latency | median {inf['overhead']['median']:.1f} ms, p99 "
        f"{inf['overhead']['p99']:.1f} ms | node's own latency {inf['node']['median']:.1f} ms | ≤ 30 ms |",
        f"| peak memory under load | node {r['memory_mib']['node']:.0f} MiB, API "
        f"{r['memory_mib']['api']:.0f} MiB | — | — |",
        *isolation_headline(r["isolation"]), "",
        "## Gas", "", "| operation | gas | peers (their published figures) |", "|---|---|---|",
        *[f"| {g['operation']} | {g['gas']:,} | {g['peers']} |" for g in r["gas"]], "",
        "From `contracts/gas-snapshot.json`, which `tests/contracts/test_gas.py` re-measures on every test run.", "",
        "## Latency", "", f"![latency]({files[0]})", "",
        f"1-second blocks: blocks from request to settlement {blocks['blocks_histogram']}; overhead median "
        f"{blocks['latency_ms']['median']:.0f} ms (mostly waiting for the next block).", "",
        "## Throughput", "", f"![throughput]({files[1]})", "",
        "| requesters | bare requests/s | jobs settled/s | ratio | anvil CPU | node CPU | requesters' CPU |",
        "|---|---|---|---|---|---|---|",
        *[f"| {t['requesters']} | {t['bare_requests_per_s']:.0f} | {t['jobs_settled_per_s']:.0f} | {t['ratio']:.2f} | "
          f"{t['cpu_anvil_pct']:.0f} % | {t['cpu_node_pct']:.0f} % | {t['cpu_requesters_pct']:.0f} % |"
          for t in r["throughput"]], "",
        "The node runs as its own process, as operators run it; CPU is in % of one core. " + bottleneck(top), "",
        "## Engines", "", f"![engine]({files[2]})", "",
        "| batch | ORT direct ms | through the node ms | node overhead | ORT ms (PyTorch loop) | PyTorch ms | "
        "PyTorch / ORT |", "|---|---|---|---|---|---|---|",
        *[f"| {a['batch']} | {a['direct_ms']:.3f} | {a['node_ms']:.3f} | {a['overhead'] * 100:+.0f} % | "
          f"{t['onnxruntime_ms']:.3f} | {t['torch_ms']:.3f} | {t['torch_over_ort']:.1f}× |"
          for a, t in zip(eng["node_vs_direct"], eng["ort_vs_torch"], strict=True)], "",
        "PyTorch runs the same weights (outputs checked equal to ONNX Runtime's). CUDA against CPU: "
        + (eng["cuda"] if isinstance(eng["cuda"], str) else "; ".join(
            f"batch {c['batch']}: ORT CUDA {c['ort_cuda_ms']:.3f} ms vs CPU {c['ort_cpu_ms']:.3f} ms, "
            f"PyTorch CUDA {c['torch_cuda_ms']:.3f} ms" for c in eng["cuda"])) + ".", "",
        "## HTTP", "",
        f"`GET /account/balance`: median {bal['http']['median']:.2f} ms, p99 {bal['http']['p99']:.2f} ms; eth_call "
        f"through the same httpx client {bal['eth_call_same_client']['median']:.2f} ms, through a kept-alive "
        f"connection {bal['eth_call']['median']:.2f} ms.", "",
        f"Inference with waiting: end-to-end median {inf['e2e']['median']:.1f} ms = node's own latency "
        f"{inf['node']['median']:.1f} ms + API {inf['overhead']['median']:.1f} ms (before the job is open on-chain "
        f"{inf['before_open']['median']:.1f} ms, after its settlement {inf['after_settle']['median']:.1f} ms).", "",
        "## Isolation", "", *isolation_bench.table(r["isolation"]), "",
        "Models load and run in sandboxed worker processes (`omnitensor.sandbox`). Engine: the same job through "
        "`EnginePool.run` against `load_engine` + decode → run → encode in-process, alternating blocks of 10 calls; "
        "the one-Add model's difference is what a call through a worker costs whatever the model. "
        "Node overhead: the latency figures above (the node runs its models in workers). Memory: resident growth of "
        "the parent and its worker together, sampled every 5 ms, each way in a process of its own.", "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench-report")
    parser.add_argument("--quick", action="store_true", help="fewer jobs: a smoke run, not numbers to quote")
    args = parser.parse_args()
    n = 10 if args.quick else 1
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {"generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                              "environment": environment(), "gas": gas()}
    print("node latency, throughput and engines (automining chain)", flush=True)
    with tempfile.TemporaryDirectory() as tmp, Anvil() as anvil:
        bench = Bench(anvil, Path(tmp))
        bench.register_node_directly()
        background = BackgroundNode(node_settings(bench))
        try:
            samples = latency(bench, background.node, 200 // n)
        finally:
            background.stop()
        report["node"] = {"latency_ms": {"median": statistics.median(samples), "p99": percentile(samples, 99),
                                         "jobs": len(samples)}, "latency_samples_ms": samples}
        report["throughput"], node_rss = concurrency_sweep(Path(tmp), 60 // n)
        report["engine"] = engines(bench)
    print("1-second blocks", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        report["block_time_1s"] = block_time_latency(Path(tmp), 10 if args.quick else 40)
    print("HTTP API", flush=True)
    report["http"] = api_bench.run(500 // n, 150 // n)
    report["memory_mib"] = {"node": node_rss, "api": report["http"]["api_peak_rss_mib"]}
    print("isolation: engine workers' time and memory", flush=True)
    report["isolation"] = isolation_bench.run(  # the node overhead is the latency measured above
        calls=300 // n, node=isolation_bench.node_summary(report["node"]["latency_samples_ms"]))
    report["seconds"] = time.perf_counter() - started
    files = plots(report, args.out)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(markdown(report, files))
    print((args.out / "report.md").read_text().split("## Gas")[0])
    print(f"report: {args.out / 'report.md'} (+ report.json, {', '.join(files)})")


if __name__ == "__main__":
    main()
