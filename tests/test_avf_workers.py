"""AVF direct trials on N local workers and on Ray: the shared chunk executor, identical stored
rows on 1 and 2 workers, on a context rebuilt from picklable data, on Ray and after a SIGKILL,
and the progress bars (rate, ETA, running AVF) of AVF studies."""
from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_config
from process_checks import run_and_kill
from faults.avf.context import AvfContext
from faults.avf.direct import ContextFactory, context_spec, local_executor, run_direct
from faults.avf.study import JoinConfig, StudyConfig, run_study
from faults.common.executor import ChunkExecutor, ExecutorError, portable, program_from_state, program_state
from faults.common.fingerprint import fingerprint_program

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
BUNDLED = ROOT / "accelsim" / "bundled"


class Doubler:
    """A toy evaluator factory: chunks are lists of ints; records the pid that ran each chunk."""

    def __call__(self):
        return self

    def run_chunk(self, chunk):
        return [(x, 2 * x, os.getpid()) for x in chunk]


def test_executor_runs_every_chunk_once_in_order_on_any_worker_count():
    chunks = [list(range(i, i + 5)) for i in range(0, 60, 5)]
    results = {}
    for workers in (1, 2):
        got = []
        with ChunkExecutor(Doubler(), workers) as ex:
            ex.run(iter(chunks), got.append)
        assert [[x for x, _, _ in part] for part in got] == chunks  # local: chunk order
        results[workers] = [[(x, y) for x, y, _ in part] for part in got]
        pids = {pid for part in got for _, _, pid in part}
        assert (pids == {os.getpid()}) == (workers == 1)  # 2 workers: run in the pool
    assert results[1] == results[2]
    with pytest.raises(ExecutorError, match="unknown backend 'dask'"):
        ChunkExecutor(Doubler(), 1, "dask")
    with pytest.raises(ExecutorError, match="workers must be >= 1"):
        ChunkExecutor(Doubler(), 0)


def _ctx(model: str = "lenet5", batch: int = 8, *sets: str) -> AvfContext:
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / model / "model.onnx"))
    with np.load(BUNDLED / model / "eval_inputs.npz") as data:
        inputs = {k: data[k][:batch] for k in data.files}
    return AvfContext(program, inputs, load_config("edge_npu", ["precision.weight_bytes=4", *sets]), "fp32")


@pytest.fixture(scope="module")
def lenet():
    return _ctx()


def _direct(ctx, structure, executor=None, **kw):
    args = dict(trials=260, seed=5, inputs_per_trial=0, chunk_size=32, window=3)
    args.update(kw)
    return run_direct(ctx, structure, executor=executor, **args)


def test_direct_rows_identical_on_one_two_workers_and_a_rebuilt_context(lenet):
    """Every column of every row (deviations to the last bit) is the same in this process, on two
    forked workers and on an evaluator rebuilt from the pickled portable factory (what Ray and
    spawn workers do)."""
    factory = pickle.loads(pickle.dumps(portable(ContextFactory.of(lenet))))
    assert factory.ctx is None and isinstance(factory.spec.program, dict)
    rebuilt = factory()
    assert rebuilt.ctx is not lenet and rebuilt.ctx.total_cycles == lenet.total_cycles
    assert fingerprint_program(program_from_state(program_state(lenet.program))) == lenet.program_fingerprint
    for structure in ("hbm", "weight_sram", "pe"):
        one = _direct(lenet, structure)
        with local_executor(lenet, workers=2) as ex:
            two = _direct(lenet, structure, ex)
            assert ex.pool is not None  # the chunks really ran in worker processes
        chunks = [(structure, tuple(range(lo, min(lo + 32, 260))), 5, 0, "uniform", 3) for lo in range(0, 260, 32)]
        remade = [row for c in chunks for row in rebuilt.run_chunk(c)]
        assert one == two == remade
        assert [r["trial"] for r in one] == list(range(260))
        if structure != "pe":  # the test means something: live sites with incorrect outputs
            assert sum(r["window_sdc"] > 0 for r in one) > 0 and sum(r["status"] == "live" for r in one) > 20


def test_context_spec_carries_everything_a_context_is_built_from(lenet):
    spec = context_spec(lenet)
    assert (spec.dtype, spec.criterion, spec.output, spec.nonfinite, spec.bank) == \
        (lenet.dtype, lenet.criterion.text, lenet.output, lenet.nonfinite, lenet.bank)
    assert spec.hw == lenet.hw and dict(spec.decode_cycles) == lenet.decode_cycles
    other = AvfContext(lenet.program, lenet.inputs, lenet.hw, "fp32", "dev>0.5", nonfinite="due")
    remade = context_spec(other).build()
    assert remade.criterion.text == other.criterion.text and remade.nonfinite == "due"


def _study(ctx, out, workers, **kw):
    config = StudyConfig(structures=("hbm", "weight_sram", "pe"), trials=150, seed=2, inputs_per_trial=0,
                         chunk_size=16, join=JoinConfig(enabled=False))
    return run_study(ctx, config, out, workers=workers, **kw)


def _stored(out: Path) -> list[tuple]:
    db = sqlite3.connect(str(out / "avf.sqlite"))
    try:
        return db.execute("SELECT * FROM sites ORDER BY structure, trial").fetchall()
    finally:
        db.close()


def test_study_on_two_workers_equals_one_and_shows_progress(lenet, tmp_path, capsys):
    a = _study(lenet, tmp_path / "one", 1)
    capsys.readouterr()
    b = _study(lenet, tmp_path / "two", 2, progress=True)
    err = capsys.readouterr().err
    for s in ("hbm", "weight_sram", "pe"):  # a bar per structure: count, rate, running AVF
        assert f"avf {s}" in err
    assert "150/150" in err and "site/s" in err and "AVF " in err and "SDC " in err
    assert _stored(tmp_path / "one") == _stored(tmp_path / "two")
    assert len(_stored(tmp_path / "one")) == 3 * 150
    for s in a.structures:
        assert a.structures[s].direct == b.structures[s].direct
    summary = json.loads((tmp_path / "two" / "avf_summary.json").read_text())
    assert summary["structures"]["hbm"]["direct"]["sdc"] == a.structures["hbm"].direct.sdc
    # resuming the finished study runs nothing and shows a full bar at once
    _study(lenet, tmp_path / "two", 2, progress=True)
    assert "150/150" in capsys.readouterr().err


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {root!r}]
    import numpy as np
    from accelsim.config import load_config
    from frontend import load_onnx
    from faults.avf.context import AvfContext
    from faults.avf.study import JoinConfig, StudyConfig, run_study
    program = load_onnx({model!r})
    with np.load({inputs!r}) as data:
        inputs = {{k: data[k][:8] for k in data.files}}
    ctx = AvfContext(program, inputs, load_config("edge_npu", ["precision.weight_bytes=4"]), "fp32")
    config = StudyConfig(structures=("hbm", "weight_sram", "pe"), trials=2500, seed=4, inputs_per_trial=0,
                         chunk_size=16, join=JoinConfig(enabled=False))
    run_study(ctx, config, sys.argv[1], workers=int(sys.argv[2]))
    """
)


def test_sigkill_then_resume_on_two_workers_equals_uninterrupted(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(TESTS), root=str(ROOT), model=str(BUNDLED / "lenet5" / "model.onnx"),
                                          inputs=str(BUNDLED / "lenet5" / "eval_inputs.npz")))
    killed = tmp_path / "killed"
    run_and_kill(script, killed, 2, "avf.sqlite", "sites")
    partial = _stored(killed)
    assert len(partial) >= 64
    subprocess.run([sys.executable, str(script), str(killed), "2"], check=True)  # resume
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, str(script), str(reference), "1"], check=True)
    final, ref = _stored(killed), _stored(reference)
    assert len(ref) == 3 * 2500
    assert len(partial) < len(ref), "the study finished before it could be killed"
    assert final == ref
    keys = {(p[0], p[1]) for p in partial}
    assert partial == [r for r in ref if (r[0], r[1]) in keys]


def test_ray_backend_identical(lenet, tmp_path):
    import ray  # the optional extra accelsim[ray]

    local = _direct(lenet, "weight_sram")
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    try:
        with local_executor(lenet, workers=2, backend="ray", key="test") as ex:
            remote = _direct(lenet, "weight_sram", ex)
        _study(lenet, tmp_path / "ray", 2, backend="ray")
    finally:
        ray.shutdown()
    assert remote == local
    _study(lenet, tmp_path / "local", 1)
    assert _stored(tmp_path / "ray") == _stored(tmp_path / "local")


def test_cli_workers_drive_the_direct_trials(tmp_path, capsys):
    from cli import main as cli

    base = ["avf", "lenet5", "--hw", "edge_npu", "--dtype", "fp32", "--structure", "hbm,pe", "--trials", "96",
            "--batch", "8", "--no-joined", "--seed", "3"]
    assert cli.main(base + ["--out", str(tmp_path / "one"), "--no-progress"]) == 0
    assert "avf hbm" not in capsys.readouterr().err  # --no-progress: no bars
    assert cli.main(base + ["--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    assert "avf hbm" in capsys.readouterr().err
    assert _stored(tmp_path / "one") == _stored(tmp_path / "two")
    assert cli.main(base + ["--out", str(tmp_path / "bad"), "--backend", "dask"]) == 2
    assert "invalid choice: 'dask'" in capsys.readouterr().err
