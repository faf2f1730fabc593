"""Campaign engine: determinism across workers/backends, SIGKILL + resume, adaptive stopping."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import pvf_toys
from process_checks import run_and_kill
from faults.common import outcome as oc
from faults.pvf.campaign import run_campaign
from faults.pvf.evaluator import TrialEvaluator
from faults.pvf.plan import CampaignConfig, make_plan, trial_rng
from faults.pvf.results import CampaignResults
from faults.pvf.store import StoreError, TrialStore

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _rows(out_dir: Path) -> list[tuple]:
    db = sqlite3.connect(str(out_dir / "trials.sqlite"))
    try:
        return db.execute("SELECT * FROM trials ORDER BY trial").fetchall()
    finally:
        db.close()


def _mlp_campaign(**kw):
    program = pvf_toys.mlp(dims=(20, 48, 32, 10))
    inputs = pvf_toys.inputs_for(program, batch=40)
    base = dict(fault="sbf", by=("layer", "bit"), trials=6, seed=11, chunk_size=16,
                dtypes=("fp32", "bf16"), inputs_per_trial=3)
    base.update(kw)
    return program, inputs, CampaignConfig(**base)


def test_trial_is_defined_by_seed_and_index():
    program, inputs, cfg = _mlp_campaign()
    ev1 = TrialEvaluator(program, inputs, cfg, "top1")
    ev2 = TrialEvaluator(program, inputs, cfg, "top1")
    for t in [0, 5, 77, 191]:
        c1, r1, f1 = ev1.draw(t)
        c2, r2, f2 = ev2.draw(t)
        assert (c1.index, r1, f1.param, f1.rows.tolist(), f1.corruption.index.tolist()) == \
            (c2.index, r2, f2.param, f2.rows.tolist(), f2.corruption.index.tolist())
        assert c1.index == t % len(ev1.plan.cells) and r1 == t // len(ev1.plan.cells)
        if c1.bit is not None:
            assert f1.corruption.bit == c1.bit
    a = trial_rng(11, 5).random(3)
    assert np.array_equal(a, trial_rng(11, 5).random(3))
    assert not np.array_equal(a, trial_rng(11, 6).random(3))
    # the chunk a trial sits in changes its result only by float rounding (stacked batch sizes)
    rows_a = {r["trial"]: r for r in ev1.run_chunk([3, 4, 5, 6])}
    rows_b = {r["trial"]: r for r in ev2.run_chunk([5])}
    ra, rb = (oc.records_from_bytes(rows_a[5]["records"]), oc.records_from_bytes(rows_b[5]["records"]))
    dev_a = dict(zip(ra["input"].tolist(), ra["dev"].tolist()))  # unchanged inputs are not stored
    dev_b = dict(zip(rb["input"].tolist(), rb["dev"].tolist()))
    for i in set(dev_a) | set(dev_b):
        assert dev_a.get(i, 0.0) == pytest.approx(dev_b.get(i, 0.0), rel=1e-5, abs=1e-6)
    assert rows_a[5]["outcome"] == rows_b[5]["outcome"]
    assert rows_a[5]["n_top1_changed"] == rows_b[5]["n_top1_changed"]


def test_one_vs_two_workers_identical(tmp_path):
    program, inputs, cfg = _mlp_campaign()
    s1 = run_campaign(program, inputs, cfg, str(tmp_path / "w1"), workers=1, progress=False)
    s2 = run_campaign(program, inputs, cfg, str(tmp_path / "w2"), workers=2, progress=False)
    plan = make_plan(program, cfg)
    assert s1.trials == s2.trials == sum(plan.planned) == len(plan.cells) * 6
    assert len(plan.cells) == 32 * 3 + 16 * 3  # fp32 and bf16 bits x 3 layers
    r1, r2 = _rows(tmp_path / "w1"), _rows(tmp_path / "w2")
    assert r1 == r2
    assert [r[0] for r in r1] == sorted({r[0] for r in r1})  # every trial once
    # re-running the finished campaign adds nothing
    s3 = run_campaign(program, inputs, cfg, str(tmp_path / "w1"), workers=2, progress=False)
    assert s3.new_trials == 0 and _rows(tmp_path / "w1") == r1


def test_store_rejects_other_campaign_and_keeps_results(tmp_path):
    program, inputs, cfg = _mlp_campaign(trials=2)
    run_campaign(program, inputs, cfg, str(tmp_path), workers=1, progress=False)
    before = _rows(tmp_path)
    other = CampaignConfig(**{**cfg.to_dict(), "seed": 12})
    with pytest.raises(StoreError, match="different PVF campaign.*seed"):
        run_campaign(program, inputs, other, str(tmp_path), workers=1, progress=False)
    assert _rows(tmp_path) == before


def test_raw_deviations_allow_reapplying_criteria(tmp_path):
    program = pvf_toys.mlp(dims=(20, 32, 1), sigmoid_out=True)
    inputs = pvf_toys.inputs_for(program, batch=50)
    cfg = CampaignConfig(fault="sbf:bits=20-31", trials=300, seed=1, inputs_per_trial=4, chunk_size=50)
    summary = run_campaign(program, inputs, cfg, str(tmp_path), workers=1, progress=False)
    assert summary.criterion == "ctr>0.05|click"
    with TrialStore(tmp_path, readonly=True) as store:
        rows = store.trials()
    strict = oc.parse_criterion("ctr>0.2")
    loose = oc.parse_criterion("ctr>0.001")
    n_strict = n_loose = n_stored = 0
    for row in rows:
        rec = oc.records_from_bytes(row["records"])
        assert rec.size <= 4 and row["n_inputs"] == 4
        assert np.all((rec["dev"] > 0) | rec["nonfinite"])  # unchanged inputs are not stored
        assert np.all(np.diff(rec["input"]) > 0)
        assert oc.parse_criterion(summary.criterion).trial_outcome(rec) == row["outcome"]
        dev = np.abs(rec["ctr_f"] - rec["ctr_g"])
        if rec.size:
            assert row["max_ctr_dev"] == pytest.approx(float(dev.max()))
        else:
            assert row["max_abs_dev"] == 0 and row["outcome"] == oc.MASKED
        n_strict += strict.trial_outcome(rec) == oc.SDC
        n_loose += loose.trial_outcome(rec) == oc.SDC
        n_stored += row["outcome"] == oc.SDC
    assert n_strict <= n_stored <= n_loose and n_strict < n_loose


def _planned_total(k0: int, n0: int, target: float, cap: int) -> int:
    """The two-stage total, derived independently: planning value = Wilson upper bound of the
    pilot at two-sided 0.8 (closed form), then the smallest n whose Wilson half-width at that
    p (closed form, non-integer count p*n) is <= target, within [n0, cap]."""
    from statistics import NormalDist

    z8, z = NormalDist().inv_cdf(0.9), NormalDist().inv_cdf(0.975)
    ph = k0 / n0
    p = min(0.5, ((ph + z8 ** 2 / (2 * n0)) + z8 * np.sqrt(ph * (1 - ph) / n0 + z8 ** 2 / (4 * n0 ** 2)))
            / (1 + z8 ** 2 / n0))
    n = next(n for n in range(1, 10 ** 6)
             if z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n) <= target)
    return int(min(cap, max(n0, n)))


def test_adaptive_two_stage_is_deterministic(tmp_path):
    program, inputs, _ = _mlp_campaign()
    cfg = CampaignConfig(fault="sbf:bits=0+30", by=("bit",), trials=2000, seed=5, half_width=0.06,
                         round_trials=50, min_trials=40, chunk_size=25, inputs_per_trial=1)
    s1 = run_campaign(program, inputs, cfg, str(tmp_path / "a"), workers=1, progress=False)
    s2 = run_campaign(program, inputs, cfg, str(tmp_path / "b"), workers=2, progress=False)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    with TrialStore(tmp_path / "a", readonly=True) as store:
        counts = store.cell_counts()
        pilots = [store.prefix_counts(c, 50) for c in (0, 1)]
    for cell in (0, 1):
        n_pilot, k_pilot = pilots[cell]
        assert n_pilot == 50  # pilot = max(round_trials, min_trials)
        # the total depends on the pilot alone
        assert counts[cell][0] == _planned_total(k_pilot, 50, 0.06, 2000)
    # bit 0 (mantissa LSB) is masked: 0 of 50 plans at p = z^2/(50+z^2) ~ 0.032, which needs 47: the pilot
    assert pilots[0][1] == 0 and counts[0][0] == 50
    # bit 30 often flips the decision: a second stage runs
    assert counts[1][0] > 50 and counts[1][1] > 0
    assert s1.trials == s2.trials == counts[0][0] + counts[1][0]
    # re-running adds nothing (the second stage is fixed by the stored pilot)
    s3 = run_campaign(program, inputs, cfg, str(tmp_path / "a"), workers=2, progress=False)
    assert s3.new_trials == 0


def test_leveugle_sizes_with_replacement_and_enumerated_cells(tmp_path):
    program, inputs, _ = _mlp_campaign()
    cfg = CampaignConfig(fault="sbf", by=("param",), trials=0, margin=0.03, seed=3, inputs_per_trial=0,
                         chunk_size=50)
    plan = make_plan(program, cfg)
    for cell, n, pop in zip(plan.cells, plan.planned, plan.populations):
        (name,) = cell.params
        assert pop == program.parameters[name].size * 32
        # 1.96^2 / 4 / 0.03^2 = 1067.1 -> 1068 draws with replacement, unless the cell has fewer faults
        assert n == min(1068, pop) and plan.enumerated(cell.index) == (pop <= 1068)
    small = [c.index for c in plan.cells if plan.enumerated(c.index)]
    assert {plan.cells[c].params[0] for c in small} == {"fc1.bias", "fc2.bias"}  # 32 and 10 elements x 32 bits
    run_campaign(program, inputs, cfg, str(tmp_path), workers=2, progress=False)
    res = CampaignResults(tmp_path)
    trials = res.trials()
    for c in small:
        sub = trials[trials.cell == c]
        sites = set(zip(sub.element, sub.bit))
        assert len(sub) == len(sites) == plan.populations[c]  # every fault exactly once
    # every input of every fault: the enumerated cells' PVF is exact
    table = res.table("param").set_index("value")
    for name in ("fc1.bias", "fc2.bias"):
        row = table.loc[name]
        assert row.exact and row.lo == row.hi == pytest.approx(row.sdc / row.n)
    assert not table.loc["fc0.weight"].exact and table.loc["fc0.weight"].hi > table.loc["fc0.weight"].lo
    # growing the cap keeps every stored trial the same trial (enumeration does not depend on trials)
    capped = CampaignConfig(**{**cfg.to_dict(), "trials": 100})
    run_campaign(program, inputs, capped, str(tmp_path / "capped"), workers=1, progress=False)
    full = {r[0]: r for r in _rows(tmp_path)}
    part = _rows(tmp_path / "capped")
    assert part and all(full[r[0]] == r for r in part)
    sub = [r for r in part if r[1] in small]
    assert len(sub) == sum(min(100, plan.populations[c]) for c in small)


def _overflowing_mlp():
    """The toy MLP with weights x6: flipping bit 30 of a weight in [1, 2) gives Inf."""
    import dataclasses

    program = pvf_toys.mlp(dims=(20, 48, 32, 10))
    return dataclasses.replace(program, parameter_values={k: v * 6 for k, v in program.parameter_values.items()})


def test_nonfinite_policy_is_applied_to_outcomes_and_reapplied_in_reports(tmp_path):
    program = _overflowing_mlp()
    inputs = pvf_toys.inputs_for(program, batch=40)
    runs = {}
    for policy in ("sdc", "due", "apart"):
        cfg = CampaignConfig(fault="sbf:bits=30", by=("layer",), trials=60, seed=1, inputs_per_trial=4,
                             chunk_size=30, nonfinite=policy)
        run_campaign(program, inputs, cfg, str(tmp_path / policy), workers=1, progress=False)
        runs[policy] = CampaignResults(tmp_path / policy).trials()
    sdc, due, apart = runs["sdc"], runs["due"], runs["apart"]
    nf = sdc.n_nonfinite > 0
    assert nf.sum() > 20 and (~nf).sum() > 20
    # the raw deviations and the finite trials do not depend on the policy
    for col in ("n_nonfinite", "max_abs_dev", "n_top1_changed", "element", "bit"):
        assert (sdc[col] == due[col]).all() and (sdc[col] == apart[col]).all()
    assert (sdc.outcome[~nf] == due.outcome[~nf]).all() and (sdc.outcome[~nf] == apart.outcome[~nf]).all()
    assert (sdc.outcome[nf] == oc.SDC).all() and (due.outcome[nf] == oc.DUE).all()
    assert (apart.outcome[nf] == oc.NONFINITE).all()
    # re-applying a policy to stored records gives the campaign run with that policy
    for policy in ("due", "apart"):
        again = CampaignResults(tmp_path / "sdc", nonfinite=policy)
        assert again.config["nonfinite"] == policy
        assert (again.trials().outcome == runs[policy].outcome).all()
        assert (again.trials().n_due == runs[policy].n_due).all()
    # PVF both ways, whatever the policy: counted as SDC / excluded
    for policy in ("sdc", "due", "apart"):
        t = CampaignResults(tmp_path / policy).table("layer")
        for _, row in t.iterrows():
            sub = runs["sdc"][runs["sdc"].layer == row.value]
            assert row.pvf_nf_sdc == pytest.approx((sub.outcome == oc.SDC).mean())
            assert row.pvf_nf_excluded == pytest.approx(((sub.outcome == oc.SDC) & (sub.n_nonfinite == 0)).mean())
            assert row.nonfinite == (sub.n_nonfinite > 0).sum()


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {root!r}]
    import pvf_toys
    from faults.pvf.campaign import run_campaign
    from faults.pvf.plan import CampaignConfig
    program = pvf_toys.mlp(dims=(64, 256, 256, 10))
    inputs = pvf_toys.inputs_for(program, batch=64)
    cfg = CampaignConfig(fault="sbf", by=("layer",), trials=1200, seed=21, chunk_size=16,
                         inputs_per_trial=8)
    run_campaign(program, inputs, cfg, sys.argv[1], workers=int(sys.argv[2]), progress=False)
    """
)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, workers):
    script = tmp_path / "campaign.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(TESTS), root=str(ROOT)))
    killed = tmp_path / "killed"
    run_and_kill(script, killed, workers, "trials.sqlite", "trials")
    partial = _rows(killed)
    assert 64 <= len(partial)
    # resume (same command) and an uninterrupted reference run
    subprocess.run([sys.executable, str(script), str(killed), str(workers)], check=True)
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, str(script), str(reference), "2"], check=True)
    final, ref = _rows(killed), _rows(reference)
    assert len(ref) == 3 * 1200
    assert len(partial) < len(ref), "the campaign finished before it could be killed"
    assert [r[0] for r in final] == list(range(3 * 1200))  # every trial exactly once
    assert final == ref
    assert partial == [r for r in ref if r[0] in {p[0] for p in partial}]


def test_ray_backend_identical(tmp_path):
    import ray  # the optional extra accelsim[ray]; CI installs it

    program, inputs, cfg = _mlp_campaign(trials=3)
    local = run_campaign(program, inputs, cfg, str(tmp_path / "local"), workers=1, progress=False)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    try:
        remote = run_campaign(program, inputs, cfg, str(tmp_path / "ray"), workers=2, backend="ray",
                              progress=False)
    finally:
        ray.shutdown()
    assert remote.trials == local.trials
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")
