"""The sandbox on its own, with real worker processes and real ONNX Runtime: limits, isolation, shape-aware
batching (a property test against running each job alone) — no chain."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnitensor import tensors
from omnitensor.engines import FORMAT_ONNX, FORMAT_TORCHSCRIPT
from omnitensor.failures import FailureCode, JobFailure
from omnitensor.sandbox import EnginePool, Limits, validate_model
from tests import models


def _file(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("models")
    return {name: _file(tmp, name, getattr(models, name)())
            for name in ("sequence_encoder", "scalar_double", "batch_total", "loop_counter", "expander",
                         "batch_cumsum")}


@pytest.fixture
def pool() -> EnginePool:
    pool = EnginePool(Limits(memory_bytes=300 * 2**20, batch_timeout_s=2, load_timeout_s=20), max_workers=3)
    yield pool
    pool.close()


def _run(pool: EnginePool, path: Path, feeds: list[dict[str, np.ndarray]]) -> list:
    return pool.run(path.name, path, FORMAT_ONNX, [tensors.encode(f) for f in feeds])


def test_jobs_of_different_sequence_lengths_share_a_call_and_get_their_own_outputs(pool: EnginePool,
                                                                                   files: dict[str, Path]) -> None:
    jobs = [{"ids": np.array([[1, 2, 3]])}, {"ids": np.array([[4, 5, 6, 7], [1, 1, 1, 1]])},
            {"ids": np.array([[9, 9, 9]])}]
    results = _run(pool, files["sequence_encoder"], jobs)
    for feeds, result in zip(jobs, results, strict=True):
        assert result.failure is None, result.message
        out = tensors.decode(result.output)
        want = models.sequence_encoder_reference(feeds["ids"])
        np.testing.assert_array_equal(out["hidden"], want["hidden"])
        np.testing.assert_array_equal(out["pooled"], want["pooled"])
    assert [r.batch for r in results] == [3, 3, 3]


def test_zero_d_inputs_and_outputs_keep_their_shape(pool: EnginePool, files: dict[str, Path]) -> None:
    results = _run(pool, files["scalar_double"], [{"x": np.array(3.0, np.float32)}, {"x": np.array(-1.5, np.float32)}])
    outs = [tensors.decode(r.output)["y"] for r in results]
    assert [o.shape for o in outs] == [(), ()]
    assert [float(o) for o in outs] == [6.0, -3.0]


def test_an_output_without_a_batch_axis_runs_jobs_one_by_one(pool: EnginePool, files: dict[str, Path]) -> None:
    jobs = [{"x": np.ones((2, 4), np.float32)}, {"x": np.full((1, 4), 10, np.float32)}]
    totals = [float(tensors.decode(r.output)["total"]) for r in _run(pool, files["batch_total"], jobs)]
    assert totals == [8.0, 40.0]


def test_a_loop_past_the_deadline_is_killed_and_fails_only_its_job(pool: EnginePool, files: dict[str, Path]) -> None:
    start = time.monotonic()
    slow = _run(pool, files["loop_counter"], [{"n": np.array(10**9, np.int64)}, {"n": np.array(5, np.int64)}])
    elapsed = time.monotonic() - start
    assert slow[0].failure == FailureCode.TIMEOUT
    assert slow[0].killed_worker
    assert slow[1].failure is None
    assert float(tensors.decode(slow[1].output)["count"][0]) == 5.0
    assert elapsed < 2 * 2 + 6  # the batch once, the culprit alone once, plus worker starts


def test_a_slow_model_does_not_hold_up_another(pool: EnginePool, files: dict[str, Path]) -> None:
    slow = threading.Thread(target=_run, args=(pool, files["loop_counter"], [{"n": np.array(10**9, np.int64)}]))
    slow.start()
    time.sleep(0.5)
    start = time.monotonic()
    (fast,) = _run(pool, files["scalar_double"], [{"x": np.array(1.0, np.float32)}])
    assert fast.failure is None
    assert time.monotonic() - start < 1.5
    slow.join()


def test_an_input_asking_for_gigabytes_fails_with_resource_limit_and_the_memory_is_returned(
        pool: EnginePool, files: dict[str, Path]) -> None:
    results = _run(pool, files["expander"], [{"shape": np.array([20000, 20000], np.int64)},
                                             {"shape": np.array([2, 3], np.int64)}])
    assert results[0].failure == FailureCode.RESOURCE_LIMIT, results[0].message
    assert tensors.decode(results[1].output)["y"].shape == (2, 3)
    assert pool.memory() < 300 * 2**20


def test_a_worker_that_dies_fails_its_job_with_internal_error_and_is_replaced(pool: EnginePool,
                                                                            files: dict[str, Path]) -> None:
    path = files["loop_counter"]
    _run(pool, path, [{"n": np.array(1, np.int64)}])
    pid = pool._slots[path.name].worker.pid  # noqa: SLF001 - the test plays a crash of the worker's runtime

    def crash() -> None:
        time.sleep(0.3)
        os.kill(pid, signal.SIGSEGV)

    threading.Thread(target=crash).start()
    (died,) = _run(pool, path, [{"n": np.array(10**9, np.int64)}])
    assert died.failure == FailureCode.INTERNAL_ERROR
    assert died.killed_worker
    (after,) = _run(pool, path, [{"n": np.array(2, np.int64)}])
    assert after.failure is None


def test_undecodable_and_mismatched_inputs_fail_alone(pool: EnginePool, files: dict[str, Path]) -> None:
    good = tensors.encode({"ids": np.array([[1, 2]])})
    bf16 = tensors.encode({"ids": np.array([[1, 2]])}).replace(b'"I64"', b'"BF16"')
    results = pool.run("s", files["sequence_encoder"], FORMAT_ONNX,
                       [b"junk", bf16, tensors.encode({"ids": np.array([[1.0]], np.float32)}), good])
    assert [r.failure for r in results] == [FailureCode.BAD_INPUT, FailureCode.UNSUPPORTED_DTYPE,
                                            FailureCode.INPUT_DTYPE_MISMATCH, None]


_rows = st.integers(0, 3)
_seq = st.integers(1, 5)
_job = st.one_of(
    st.tuples(st.just("sequence_encoder"), _rows, _seq),
    st.tuples(st.just("batch_cumsum"), st.integers(1, 3), st.just(2)),
    st.tuples(st.just("scalar_double"), st.just(0), st.just(0)),
    st.tuples(st.just("batch_total"), st.integers(1, 3), st.just(4)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(_job, min_size=1, max_size=8), seed=st.integers(0, 2**31))
def test_batching_gives_exactly_the_outputs_of_each_job_alone(pool: EnginePool, files: dict[str, Path],
                                                              jobs: list[tuple[str, int, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    feeds = []
    for name, rows, width in jobs:
        if name == "sequence_encoder":
            feeds.append((name, {"ids": rng.integers(-1000, 1000, (rows, width))}))
        elif name == "scalar_double":
            feeds.append((name, {"x": np.array(rng.normal(), np.float32)}))
        else:  # batch_total and batch_cumsum
            feeds.append((name, {"x": rng.normal(size=(rows, width)).astype(np.float32)}))
    for name in {name for name, _ in feeds}:  # each model's jobs in their arrival order, as one batch
        mine = [f for n, f in feeds if n == name]
        together = _run(pool, files[name], mine)
        for f, result in zip(mine, together, strict=True):
            (alone,) = _run(pool, files[name], [f])
            assert result.failure is None
            assert alone.failure is None
            got, want = tensors.decode(result.output), tensors.decode(alone.output)
            assert got.keys() == want.keys()
            for key in got:
                assert got[key].dtype == want[key].dtype
                assert got[key].shape == want[key].shape
                np.testing.assert_array_equal(got[key], want[key])


def test_a_model_that_mixes_rows_never_sees_another_jobs_input(pool: EnginePool, files: dict[str, Path]) -> None:
    mine, theirs = np.array([[1, 1]], np.float32), np.array([[100, 100]], np.float32)
    results = _run(pool, files["batch_cumsum"], [{"x": theirs}, {"x": mine}])
    np.testing.assert_array_equal(tensors.decode(results[1].output)["y"], mine)


@pytest.mark.parametrize("name", ["__metadata__", ""])
def test_output_names_a_payload_cannot_carry_are_refused_at_load(tmp_path: Path, name: str) -> None:
    path = _file(tmp_path, "m.onnx", models.named_output(name) if name else models.named_output("y"))
    if not name:  # an empty name cannot be built through onnx.helper's checks: write it into the graph directly
        import onnx

        proto = onnx.load(path)
        proto.graph.node[0].output[0] = proto.graph.output[0].name = ""
        onnx.save(proto, path)
    with pytest.raises(JobFailure) as info:
        validate_model(path, FORMAT_ONNX, Limits())
    assert info.value.failure == FailureCode.MODEL_LOAD_FAILED


@pytest.mark.parametrize("location", ["sibling", "../sibling", "/etc/hostname"])
def test_external_data_cannot_read_files_beside_the_model(tmp_path: Path, location: str) -> None:
    np.arange(4, dtype=np.float32).tofile(tmp_path / "sibling")
    store = tmp_path / "store"
    store.mkdir()
    np.arange(4, dtype=np.float32).tofile(store / "sibling")
    with pytest.raises(JobFailure, match="external data") as info:
        validate_model(_file(store, "m.onnx", models.external_weights(location)), FORMAT_ONNX, Limits())
    assert info.value.failure == FailureCode.MODEL_LOAD_FAILED


def _torchscript(tmp_path: Path, module: object, signature: str) -> Path:
    import torch

    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(module), str(path), _extra_files={"omnitensor.json": signature})
    return path


@pytest.mark.parametrize("shape", ["[1e400]", "[1.5, 2]", "[-1, 2]", "[true, 2]", '["2"]'])
def test_a_torchscript_signature_with_odd_dimensions_fails_to_load_with_its_code(tmp_path: Path, shape: str) -> None:
    import torch

    signature = f'{{"inputs": [{{"name": "x", "dtype": "float32", "shape": {shape}}}], "outputs": ["y"]}}'
    with pytest.raises(JobFailure) as info:
        validate_model(_torchscript(tmp_path, torch.nn.Identity(), signature), FORMAT_TORCHSCRIPT, Limits())
    assert info.value.failure == FailureCode.MODEL_LOAD_FAILED


def test_a_bfloat16_torchscript_output_fails_with_unsupported_dtype(tmp_path: Path) -> None:
    import torch

    class ToBF16(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.to(torch.bfloat16)

    signature = '{"inputs": [{"name": "x", "dtype": "float32", "shape": [null, 2]}], "outputs": ["y"]}'
    path = _torchscript(tmp_path, ToBF16(), signature)
    pool = EnginePool(Limits())
    try:
        (result,) = pool.run("bf16", path, FORMAT_TORCHSCRIPT, [tensors.encode({"x": np.ones((1, 2), np.float32)})])
    finally:
        pool.close()
    assert result.failure == FailureCode.UNSUPPORTED_DTYPE
