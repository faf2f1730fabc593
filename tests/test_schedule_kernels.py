"""The Numba kernels of the schedule equal their pure-Python twins, and the wrappers validate."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.schedule import _kernels


def _random_steps(rng, n):
    cycles = {k: rng.integers(0, 30, n) * rng.integers(0, 2, n) for k in ("w", "a", "e", "wb")}
    cycles["compute"] = rng.integers(0, 50, n)
    flags = {k: rng.integers(0, 2, n) for k in ("out_first", "out_last", "barrier", "w_use", "a_use", "e_use")}
    return cycles, flags


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("slots", [(1, 1, 1, 1), (2, 2, 2, 2), (2, 1, 2, 1), (1, 2, 1, 2)])
def test_timeline_twin(seed, slots):
    rng = np.random.default_rng(seed)
    cycles, flags = _random_steps(rng, 200)
    fast = _kernels.timeline(cycles, flags, slots)
    slow = _kernels.timeline(cycles, flags, slots, python=True)
    assert np.array_equal(fast, slow)
    c_start, c_end = fast[:, 9], fast[:, 10]
    assert np.all(c_end - c_start == cycles["compute"])
    assert np.all(c_start[1:] >= c_end[:-1])                        # one step at a time
    for col, key in ((1, "w"), (4, "a"), (7, "e")):                  # loads finish before use
        has = cycles[key] > 0
        assert np.all(fast[has, col] <= c_start[has])
    wb = (flags["out_last"] == 1) & (cycles["wb"] > 0)
    assert np.all(fast[wb, 11] >= c_end[wb])                         # writeback after compute


def test_timeline_double_buffering_hides_loads():
    n = 20
    cycles = {"w": np.full(n, 10), "a": np.zeros(n, np.int64), "e": np.zeros(n, np.int64),
              "wb": np.zeros(n, np.int64), "compute": np.full(n, 10)}
    flags = {k: np.zeros(n, np.int64) for k in ("out_first", "out_last", "barrier", "a_use", "e_use")}
    flags["w_use"] = np.ones(n, np.int64)
    single = _kernels.timeline(cycles, flags, (1, 1, 1, 1))
    double = _kernels.timeline(cycles, flags, (2, 1, 1, 1))
    assert single[-1, 10] == 20 * 20                # load, compute, load, compute, ...
    assert double[-1, 10] == 10 + 20 * 10           # only the first load is exposed
    assert double[:, 2].tolist() == [0, 1] * 10     # slots alternate


def test_timeline_validates():
    cycles, flags = _random_steps(np.random.default_rng(0), 5)
    with pytest.raises(ValueError, match="slots"):
        _kernels.timeline(cycles, flags, (3, 1, 1, 1))
    bad = dict(cycles, compute=np.array([1, 2]))
    with pytest.raises(ValueError, match="same length"):
        _kernels.timeline(bad, flags, (1, 1, 1, 1))
    bad = dict(cycles, w=-np.ones(5, np.int64))
    with pytest.raises(ValueError, match="negative"):
        _kernels.timeline(bad, flags, (1, 1, 1, 1))


@pytest.mark.parametrize("code", [0, 1, 2])
def test_expand_folds_twin(code):
    rng = np.random.default_rng(code)
    n = 50
    rows, cols = 4, 3
    m0, k0, n0 = (rng.integers(0, 20, n) for _ in range(3))
    m1, k1, n1 = m0 + rng.integers(1, 15, n), k0 + rng.integers(1, 15, n), n0 + rng.integers(1, 15, n)
    ceil = lambda a, b: -(-a // b)  # noqa: E731
    folds = [ceil(k1 - k0, rows) * ceil(n1 - n0, cols), ceil(m1 - m0, rows) * ceil(n1 - n0, cols),
             ceil(k1 - k0, rows) * ceil(m1 - m0, cols)][code]
    steps = {"step": np.arange(n), "g": rng.integers(0, 2, n), "m0": m0, "m1": m1, "k0": k0, "k1": k1,
             "n0": n0, "n1": n1, "start": np.cumsum(rng.integers(0, 100, n)), "fold_len": rng.integers(1, 9, n)}
    fast = _kernels.expand_folds(steps, folds, rows, cols, code)
    slow = _kernels.expand_folds(steps, folds, rows, cols, code, python=True)
    assert np.array_equal(fast, slow) and len(fast) == folds.sum()
    # blocks of one step tile its M×K×N box exactly
    for s in range(n):
        sel = fast[fast[:, 0] == s]
        vol = ((sel[:, 3] - sel[:, 2]) * (sel[:, 5] - sel[:, 4]) * (sel[:, 7] - sel[:, 6])).sum()
        per_fold_full = (m1[s] - m0[s]) if code == 0 else (k1[s] - k0[s]) if code == 1 else (n1[s] - n0[s])
        assert vol == (m1[s] - m0[s]) * (k1[s] - k0[s]) * (n1[s] - n0[s]) and per_fold_full > 0


def test_expand_folds_validates():
    steps = {k: np.zeros(2, np.int64) for k in ("step", "g", "m0", "m1", "k0", "k1", "n0", "n1", "start", "fold_len")}
    with pytest.raises(ValueError):
        _kernels.expand_folds(steps, np.zeros(3, np.int64), 4, 4, 0)
    with pytest.raises(ValueError):
        _kernels.expand_folds(steps, np.zeros(2, np.int64), 4, 4, 5)


def test_simulate_with_python_twins_is_identical():
    from accelsim.config import load_config
    from accelsim.schedule import simulate
    from schedule_programs import attention, convnet, dlrm_like, mlp, shapes_of

    for build in (mlp, convnet, attention, dlrm_like):
        prog, cache = build()
        for dataflow in ("ws", "os", "is"):
            hw = load_config("edge_npu", [f"array.dataflow={dataflow}", "array.rows=4", "array.cols=8",
                                          "weight_sram.size_kib=0.5", "weight_sram.word_bytes=4"])
            fast = simulate(prog, shapes_of(cache), hw, index_values=cache)
            slow = simulate(prog, shapes_of(cache), hw, index_values=cache, python=True)
            assert fast.times.equals(slow.times) and fast.folds.equals(slow.folds)
            assert fast.segments.equals(slow.segments)
            for col, values in fast.residency.cols.items():
                assert np.array_equal(values, slow.residency.cols[col]), col


def test_first_affected_matches_mac_cycles():
    from accelsim.schedule.dataflow import first_affected, mac_cycle

    for dataflow in ("ws", "os", "is"):
        t0, rows, r, c = 100, 4, 2, 3
        macs = mac_cycle(dataflow, t0, rows, np.arange(10), r, c)
        for cycle in range(90, 130):
            start = int(first_affected(dataflow, t0, rows, r, c, cycle))
            assert np.all(macs[start:] >= cycle) and np.all(macs[:start] < cycle)
