"""Time to answer (``precision``): strata, allocation, determinism across workers and
interruptions, the estimate's bias and coverage by simulation, configuration and CLI."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

import pvf_toys
from cli import main as cli
from faults import api
from faults.common import stats
from faults.pvf import precision as pr
from faults.pvf.campaign import run_campaign
from faults.pvf.evaluator import TrialEvaluator
from faults.pvf.plan import CampaignConfig, CampaignError, make_plan
from faults.pvf.results import CampaignResults


def _rows(out: Path) -> list[tuple]:
    db = sqlite3.connect(str(out / "trials.sqlite"))
    try:
        return db.execute("SELECT * FROM trials ORDER BY trial").fetchall()
    finally:
        db.close()


def test_strata_are_the_hot_bit_per_layer_and_one_rest_stratum():
    model = api.load_model("lenet5")
    program = model.program
    plan = make_plan(program, CampaignConfig(precision=0.2))
    layers = sorted({p.component for p in program.parameters.values()})
    hot, rest = plan.cells[:-1], plan.cells[-1]
    assert sorted(dict(c.keys)["layer"] for c in hot) == layers and all(c.bit == 30 for c in hot)
    assert rest.bit is None and dict(rest.keys) == {"bit": "rest"} and plan.rest(rest.index)["fp32"] == \
        tuple(b for b in range(32) if b != 30)
    elements = {layer: sum(p.size for p in program.parameters.values() if p.component == layer) for layer in layers}
    total = sum(elements.values())
    assert {dict(c.keys)["layer"]: c.bits_total for c in hot} == elements  # one stored bit per element
    assert rest.bits_total == 31 * total
    w = pr.stratum_weights(plan.cells)
    assert w.sum() == pytest.approx(1.0) and w[-1] == pytest.approx(31 / 32)
    # draws: a hot stratum flips bit 30 of its layer; the rest stratum any other bit, uniformly
    # over the stored rest bits (parameters by size, bits uniform)
    inputs = api.load_inputs(model, batch=4)
    ev = TrialEvaluator(program, inputs, CampaignConfig(precision=0.2), "top1")
    C = len(plan.cells)
    drawn = [ev.draw(r * C + C - 1) for r in range(3000)]
    bits = np.array([f.corruption.bit for _, _, f in drawn])
    assert 30 not in bits and set(bits) == set(range(32)) - {30}
    counts = np.delete(np.bincount(bits, minlength=32), 30)
    assert np.abs(counts - 3000 / 31).max() < 5 * np.sqrt(3000 / 31)
    fc1 = np.mean([program.parameters[f.param].component == "fc1" for _, _, f in drawn])
    assert abs(fc1 - elements["fc1"] / total) < 0.03
    for c in hot[:3]:
        for r in range(20):
            cell, _, f = ev.draw(r * C + c.index)
            assert f.corruption.bit == 30 and program.parameters[f.param].component == dict(c.keys)["layer"]


def test_int8_strata_keep_scales_apart():
    program = pvf_toys.mlp(dims=(8, 6, 4))
    plan = make_plan(program, CampaignConfig(precision=0.2, dtypes=("int8",)))
    labels = [c.label() for c in plan.cells]
    assert "layer=bottom_mlp.0,bit=30,stored=scale" in labels and "layer=bottom_mlp.0,bit=7" in labels
    rest = plan.rest(len(plan.cells) - 1)
    assert rest == {"int8": tuple(range(7)), "fp32": tuple(b for b in range(32) if b != 30)}


def test_allocation_is_neyman_where_events_are_plentiful_and_reaches_the_target():
    w = np.array([0.02, 0.01, 0.005, 0.965])
    p = np.array([0.5, 0.1, 0.3, 0.0])
    current = np.array([30, 30, 30, 30])
    cap = np.full(4, 10**7)
    n = pr.allocate(w, p, current, cap, 0.1)
    assert np.array_equal(n, pr.allocate(w, p, current, cap, 0.1))  # a pure function
    assert pr.predicted_half_width(w, p, n, 0.95, "wilson") <= 0.1
    assert pr.predicted_half_width(w, p, (n * 0.9).astype(int), 0.95, "wilson") > 0.1  # not wastefully large
    sigma = np.sqrt(p * (1 - p))
    neyman = (w * sigma)[:3] / (w * sigma)[0]
    assert n[:3] / n[0] == pytest.approx(neyman, rel=0.1)
    assert n[3] > 10 * current[3]  # no event seen, heavy: still sampled (the interval's shrinkage)
    assert np.all(n >= current)
    capped = pr.allocate(w, p, current, np.full(4, 100), 0.1)
    assert np.array_equal(capped, np.full(4, 100))


def _population(rng: np.random.Generator):
    """A MiniLM-like population: hot strata with rates 0..0.8 (a heavy one without events), a
    rest stratum of 31/32 of the bits with a rare rate."""
    w_hot = np.array([0.0161, 8.1e-4, 8.1e-4, 8.1e-4, 2e-4, 2e-4, 2e-4, 2e-4, 2.7e-4, 1e-6, 1e-6])
    p_hot = np.array([0.0, 0.5, 0.7, 0.4, 0.15, 0.8, 0.1, 0.6, 0.0, 1.0, 0.8])
    w = np.append(w_hot / w_hot.sum() / 32, 31 / 32)
    p = np.append(p_hot, 1e-4)
    return w, p, np.append(np.ones(w_hot.size, bool), False)


def test_rounds_bias_and_coverage_by_simulation():
    """The whole rule — pilot, allocation, re-allocation until the achieved interval reaches the
    target — on binomial draws: the estimate's relative bias (the stopping decision's only
    effect) stays within 2.5%, the 95% interval covers, the target is met."""
    rng = np.random.default_rng(7)
    w, p, hot = _population(rng)
    true = float((w * p).sum())
    config = CampaignConfig(precision=0.1, pilot_trials=30)
    est, hits, met, trials = [], 0, 0, []
    for _ in range(300):
        rounds = pr.PrecisionRounds.__new__(pr.PrecisionRounds)
        rounds.config, rounds.weights, rounds.hot = config, w, hot
        rounds.caps, rounds.round = np.full(w.size, 10**7), 0
        totals = np.array(rounds.pilot())
        n, k = np.zeros(w.size, int), np.zeros(w.size, int)
        while totals is not None:
            add = totals - n
            k, n = k + rng.binomial(add, p), totals
            nxt = rounds.next_totals(n, k)
            totals = None if nxt is None else np.array(nxt)
        e = stats.stratified(k, n, w)
        est.append(e.pvf)
        hits += e.lo <= true <= e.hi
        met += pr.relative_half_width(e) <= 0.1
        trials.append(n.sum())
    assert abs(np.mean(est) / true - 1) < 0.025
    assert hits / 300 >= 0.93 and met / 300 >= 0.97
    uniform = stats.required_trials(true, 0.1 * true)  # Wilson sample size for the same precision
    assert np.mean(trials) < uniform / 5


def _toy(**kw):
    program = pvf_toys.mlp(dims=(20, 48, 32, 10))
    inputs = pvf_toys.inputs_for(program, batch=40)
    base = dict(precision=0.25, trials=100_000, seed=3, chunk_size=16, pilot_trials=20)
    base.update(kw)
    return program, inputs, CampaignConfig(**base)


class Stop(Exception):
    pass


def test_precision_campaign_is_deterministic_resumable_and_reaches_its_target(tmp_path):
    program, inputs, cfg = _toy()
    s1 = run_campaign(program, inputs, cfg, str(tmp_path / "w1"), workers=1, progress=False)
    s2 = run_campaign(program, inputs, cfg, str(tmp_path / "w2"), workers=2, progress=False)
    rows = _rows(tmp_path / "w1")
    assert rows == _rows(tmp_path / "w2") and s1.trials == s2.trials == len(rows)
    results = CampaignResults(tmp_path / "w1")
    est = results.population()
    assert pr.relative_half_width(est) <= 0.25
    # the bar's running estimate and the allocation's are the results module's estimate
    plan = make_plan(program, cfg)
    counts = np.zeros((len(plan.cells), 2))
    for r in rows:
        counts[r[1]] += (1, r[-2] == 1)
    mine = stats.stratified(counts[:, 1], counts[:, 0], pr.stratum_weights(plan.cells))
    assert (mine.pvf, mine.lo, mine.hi) == pytest.approx((est.pvf, est.lo, est.hi), rel=1e-12)
    per_cell = counts[:, 0]
    assert per_cell.min() >= 1 and per_cell.max() > 3 * np.median(per_cell)  # allocation, not uniform
    # interrupted after a few chunks (in the pilot and in a later round), then resumed: the same rows
    for stop_after in (2, int(len(rows) / 16 * 0.8)):
        seen = []

        def stop(n, seen=seen, limit=stop_after):
            seen.append(n)
            if len(seen) >= limit:
                raise Stop()

        out = tmp_path / f"stopped{stop_after}"
        with pytest.raises(Stop):
            run_campaign(program, inputs, cfg, str(out), workers=1, progress=False, on_chunk=stop)
        assert 0 < len(_rows(out)) < len(rows)
        run_campaign(program, inputs, cfg, str(out), workers=2, progress=False)
        assert _rows(out) == rows
    # a finished campaign adds nothing; a tighter target resumes it and adds trials
    assert run_campaign(program, inputs, cfg, str(tmp_path / "w1"), workers=1, progress=False).new_trials == 0
    tighter = CampaignConfig(**{**cfg.to_dict(), "precision": 0.15})
    s3 = run_campaign(program, inputs, tighter, str(tmp_path / "w1"), workers=1, progress=False)
    assert s3.new_trials > 0 and pr.relative_half_width(CampaignResults(tmp_path / "w1").population()) <= 0.15


def test_precision_configuration_is_checked_and_identified():
    with pytest.raises(CampaignError, match=r"precision \(relative half-width\) must be in \(0, 1\)"):
        CampaignConfig(precision=1.5)
    with pytest.raises(CampaignError, match="no margin or half-width"):
        CampaignConfig(precision=0.1, half_width=0.01)
    with pytest.raises(CampaignError, match="takes no 'bit'"):
        CampaignConfig(precision=0.1, by=("layer", "bit"))
    with pytest.raises(CampaignError, match="weighting must be 'bits'"):
        CampaignConfig(precision=0.1, weighting="uniform")
    plain, timed = CampaignConfig(), CampaignConfig(precision=0.1)
    assert "precision" not in plain.identity() and "strata" not in plain.identity()  # old stores still resume
    assert timed.identity()["strata"] == "precision"
    assert CampaignConfig(precision=0.05).identity() == timed.identity()  # a target may be tightened


def test_cli_precision_prints_the_population_estimate_and_shows_progress(tmp_path, capsys):
    out = tmp_path / "answer"
    code = cli.main(["pvf", "lenet5", "--precision", "0.3", "--max-inputs", "16", "--chunk", "32",
                     "--seed", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    line = next(t for t in captured.out.splitlines() if t.startswith("population PVF"))
    assert "target ±30%" in line
    rel = float(line.split("±")[1].split("%")[0])
    assert rel <= 30
    assert "±" in captured.err and "target ±30%" in captured.err and "trial/s" in captured.err  # the bar
    assert (out / "report").is_dir()
    code = cli.main(["pvf", "lenet5", "--precision", "0.3", "--margin", "0.05", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("accelsim pvf: error: precision sets the sample size itself")
