"""Trial counts beyond what fits: refused up front, or streamed without per-trial allocation.

The runner streams each round's trial indices in chunks; the partition must be exactly the
one of cutting the sorted list of the round's trials (so stored results stay bit-identical),
a campaign of 10^12 planned trials must start at once in constant memory, and indices that
would not fit an SQLite integer are refused before anything runs.
"""
from __future__ import annotations

import sqlite3
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from faults import api
from faults.pvf.campaign import run_campaign
from faults.pvf.plan import CampaignError, Plan
from faults.pvf.runner import MAX_TRIAL_INDEX, Runner


def _runner(planned: list[int], chunk: int) -> Runner:
    runner = Runner.__new__(Runner)  # only the plan and the chunk size matter here
    runner.plan = Plan(cells=tuple(range(len(planned))), planned=tuple(planned), populations=(0.0,) * len(planned))
    runner.config = SimpleNamespace(chunk_size=chunk, half_width=None)
    return runner


def _listed_chunks(runner: Runner, ranges, chunk: int) -> list[list[int]]:
    """The partition as it was computed before streaming: sort every trial, cut in pieces."""
    trials = sorted(runner.plan.trial_index(c, r) for c, (lo, hi) in enumerate(ranges) for r in range(lo, hi))
    return [trials[i:i + chunk] for i in range(0, len(trials), chunk)]


@pytest.mark.parametrize("seed", range(12))
def test_streamed_partition_is_the_sorted_partition(seed):
    rng = np.random.default_rng(seed)
    cells = int(rng.integers(1, 40))
    chunk = int(rng.choice([1, 3, 7, 64, 500]))
    planned = [int(n) for n in rng.integers(0, 300, cells)]
    runner = _runner(planned, chunk)
    ranges = [(int(rng.integers(0, n + 1)) if seed % 2 else 0, n) for n in planned]  # pilot rests too
    streamed = list(runner.round_chunks(ranges))
    assert streamed == _listed_chunks(runner, ranges, chunk)
    assert all(isinstance(t, int) for ch in streamed for t in ch)


def test_a_trillion_trials_start_at_once_in_constant_memory():
    runner = _runner([10**12] * 26, 64)
    tracemalloc.start()
    start = time.perf_counter()
    rounds = list(runner.rounds())
    assert rounds == [[(0, 10**12)] * 26]  # a round is its per-cell ranges, not a list of trials
    chunks = runner.round_chunks(rounds[0])
    first = [next(chunks) for _ in range(1000)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 20 * 2**20, peak
    assert first[0] == list(range(64)) and first[-1][-1] == 64 * 1000 - 1


def test_unindexable_plans_are_refused():
    runner = _runner([MAX_TRIAL_INDEX // 4, 1, 1, 1, 1], 64)
    with pytest.raises(CampaignError, match=r"would exceed 4611686018427387904 \(2\^62\)"):
        runner._check_indexable()
    _runner([MAX_TRIAL_INDEX // 8] * 5, 64)._check_indexable()  # fits


class Stop(Exception):
    pass


def test_huge_campaign_streams_stops_and_resumes_identically(tmp_path):
    """A campaign planned at 2^40 trials runs its first chunk at once (nothing per planned
    trial); stopped there and resumed as a 128-trial campaign it ends with exactly the rows of
    a 128-trial campaign run in one go."""
    model = api.load_model("lenet5")
    inputs = api.load_inputs(model, batch=8)

    def stop(_n):
        raise Stop()

    config = api.CampaignConfig(trials=2**40, seed=3, chunk_size=32)
    start = time.perf_counter()
    with pytest.raises(Stop):
        run_campaign(model.program, inputs, config, str(tmp_path / "grown"), workers=1, progress=False,
                     model_id=model.model_id, on_chunk=stop)
    assert time.perf_counter() - start < 60
    assert _rows(tmp_path / "grown") and len(_rows(tmp_path / "grown")) == 32
    small = api.CampaignConfig(trials=128, seed=3, chunk_size=32)
    for folder in ("grown", "direct"):
        run_campaign(model.program, inputs, small, str(tmp_path / folder), workers=1, progress=False,
                     model_id=model.model_id)
    assert len(_rows(tmp_path / "direct")) == 128
    assert _rows(tmp_path / "grown") == _rows(tmp_path / "direct")


def _rows(folder) -> list[tuple]:
    db = sqlite3.connect(f"file:{folder}/trials.sqlite?mode=ro", uri=True)
    try:
        return db.execute("SELECT * FROM trials ORDER BY trial").fetchall()
    finally:
        db.close()
