"""Pooled PVF tables: bits-weighted headline (cells weighted by population share, shared cells
split), unweighted pooled count beside it, unsampled strata flagged, activation columns, and
the report that shows them. Expected values are computed by hand from the synthetic counts."""
from __future__ import annotations

import csv
import json
import sqlite3

import numpy as np
import pytest

import pvf_toys
from faults.common import outcome as oc
from faults.common import stats
from faults.pvf.campaign import run_campaign
from faults.pvf.plan import CampaignConfig
from faults.pvf.results import group_table, population_estimate
from faults.report.pvf_report import write_report
from report_checks import markdown_table, printed, query

CONFIG = {"fault": "sbf:bits=30+31", "weighting": "bits", "inputs_per_trial": 1}


def _cell(index, layer, elements, bit=None):
    keys = {"layer": layer} if bit is None else {"layer": layer, "bit": str(bit)}
    return {"cell": index, "dtype": "fp32", "bit": bit, "label": "", "keys": json.dumps(keys),
            "params": f"{layer}.weight", "bits_total": elements * 32, "population": float(elements * (1 if bit is not None else 2)),
            "planned": 0}


def _trials(cell, layer, bit, n, k, nonfinite=0, inactive=0):
    rows = []
    for i in range(n):
        sdc = i < k
        rows.append({"cell": cell, "layer": layer, "component": layer.split(".")[0], "grp": layer.split(".")[0],
                     "role": "weight", "param": f"{layer}.weight", "bit": bit, "dtype": "fp32",
                     "outcome": oc.SDC if sdc else oc.MASKED, "n_sdc": int(sdc), "n_inputs": 1,
                     "n_nonfinite": int(sdc and i < nonfinite), "nflips": 0 if i >= n - inactive else 1})
    return rows


# layer A: 100 elements, layer B: 900; one cell per (layer, bit) for bits 30 and 31
CELLS = [_cell(0, "top.0", 100, 30), _cell(1, "top.0", 100, 31), _cell(2, "top.1", 900, 30), _cell(3, "top.1", 900, 31)]
TRIALS = (_trials(0, "top.0", 30, 200, 80, nonfinite=20) + _trials(1, "top.0", 31, 200, 2)
          + _trials(2, "top.1", 30, 50, 5, nonfinite=1) + _trials(3, "top.1", 31, 50, 0))


def test_bits_weighted_headline_and_pooled_count():
    rows = {r.value: r for r in group_table(TRIALS, CELLS, "bit", config=CONFIG)}
    r30 = rows["30"]
    # bits of each cell: 32 n / 2 cells sharing the layer -> shares 100 : 900
    assert r30.pvf == pytest.approx((100 * 80 / 200 + 900 * 5 / 50) / 1000) == pytest.approx(0.13)
    assert r30.pvf_pooled == pytest.approx(85 / 250)
    ref = stats.stratified([80, 5], [200, 50], [100, 900])
    assert (r30.lo, r30.hi) == pytest.approx((ref.lo, ref.hi))
    assert r30.bits == pytest.approx(16 * 100 + 16 * 900) and r30.cells == 2 and r30.unsampled == 0
    # non-finite both ways: 21 of the 85 SDC faults had NaN/Inf outputs
    assert r30.nonfinite == 21
    assert r30.pvf_nf_sdc == pytest.approx(0.13)
    assert r30.pvf_nf_excluded == pytest.approx((100 * 60 / 200 + 900 * 4 / 50) / 1000)
    # layers pooled over their bit cells (equal shares), components derived from the layer key
    by_layer = {r.value: r for r in group_table(TRIALS, CELLS, "layer", config=CONFIG)}
    assert by_layer["top.0"].pvf == pytest.approx((80 / 200 + 2 / 200) / 2)
    (comp,) = group_table(TRIALS, CELLS, "component", config=CONFIG)
    assert comp.value == "top" and comp.cells == 4
    assert comp.pvf == pytest.approx((100 * (0.4 + 0.01) + 900 * (0.1 + 0)) / 2000)
    pop = population_estimate(TRIALS, CELLS, config=CONFIG)
    assert pop.pvf == pytest.approx(comp.pvf) and pop.unsampled == 0


def test_unsampled_strata_are_flagged_with_worst_case_bounds():
    trials = [t for t in TRIALS if t["cell"] != 3]  # top.1 bit 31 not run yet
    rows = {r.value: r for r in group_table(trials, CELLS, "bit", config=CONFIG)}
    r31 = rows["31"]
    assert r31.unsampled == 1 and r31.cells == 2
    assert r31.pvf == pytest.approx(2 / 200)  # over the sampled stratum
    lo, hi = stats.wilson(2, 200)
    assert (r31.lo, r31.hi) == pytest.approx((0.1 * lo, 0.1 * hi + 0.9))  # 90% of the bits unknown
    pop = population_estimate(trials, CELLS, config=CONFIG)
    assert pop.unsampled == 1 and pop.unsampled_weight == pytest.approx(0.45)


def test_bit_share_inside_unstratified_cells():
    # strata by layer only: the bit is drawn uniformly from {30, 31}: each bit is half of a cell
    cells = [_cell(0, "top.0", 100), _cell(1, "top.1", 900)]
    trials = _trials(0, "top.0", 30, 90, 30) + _trials(0, "top.0", 31, 110, 0) + \
        _trials(1, "top.1", 30, 20, 2) + _trials(1, "top.1", 31, 30, 0)
    rows = {r.value: r for r in group_table(trials, cells, "bit", config=CONFIG)}
    assert rows["30"].pvf == pytest.approx((100 * 30 / 90 + 900 * 2 / 20) / 1000)
    assert rows["30"].pvf_pooled == pytest.approx(32 / 110)
    # without the configuration the share is estimated from the trials (90/200 and 20/50)
    est = {r.value: r for r in group_table(trials, cells, "bit")}
    w = np.array([3200 * 90 / 200, 28800 * 20 / 50])
    assert est["30"].pvf == pytest.approx(float((w * [30 / 90, 2 / 20]).sum() / w.sum()))


def test_activation_columns():
    # 200 stuck-at faults, 120 activated, 30 SDC (all activated): PVF among activated 30/120
    trials = _trials(0, "top.0", 30, 200, 30, inactive=80)
    (row,) = group_table(trials, CELLS[:1], "layer", config={**CONFIG, "fault": "stuck1:bits=30+31"})
    assert row.activated == 120 and row.activated_share == pytest.approx(0.6)
    assert row.pvf == pytest.approx(0.15) and row.pvf_activated == pytest.approx(0.25)
    assert (row.pvf_activated_lo, row.pvf_activated_hi) == pytest.approx(stats.wilson(30, 120))
    assert (row.activated_lo, row.activated_hi) == pytest.approx(stats.wilson(120, 200))


def test_report_shows_weighted_headline_both_ways_activation_and_unsampled(tmp_path):
    program = pvf_toys.mlp(dims=(20, 48, 32, 10))
    inputs = pvf_toys.inputs_for(program, batch=40)
    cfg = CampaignConfig(fault="stuck1:bits=29-31", by=("layer", "bit"), trials=30, seed=2, chunk_size=45)
    run_campaign(program, inputs, cfg, str(tmp_path), workers=1, progress=False)
    out = write_report(tmp_path, plots=False)
    md = open(out["markdown"]).read()
    assert "**PVF (bits-weighted over 9 strata)" in md and "pooled count (unweighted)" in md
    assert "PVF with non-finite counted as SDC" in md and "PVF among activated faults" in md
    assert "| layer | faults | SDC | PVF (bits-weighted) | 95% interval | pooled SDC/faults |" in md
    # the numbers printed, against counts straight from the store: 3 layers x bits 29-31, 30 faults
    # each; a layer pools its 3 bit strata at equal shares; stuck-at-1 on a bit already 1 changes
    # nothing (not activated, masked)
    cells = {(layer, bit): (n, k, act) for layer, bit, n, k, act in query(
        tmp_path / "trials.sqlite", "SELECT layer, bit, COUNT(*), SUM(outcome = ?), SUM(nflips > 0) FROM trials "
        "GROUP BY layer, bit", oc.SDC)}
    assert len(cells) == 9 and {n for n, _, _ in cells.values()} == {30}
    md_layers = markdown_table(md, "layer")
    assert [r["layer"] for r in md_layers] == sorted({layer for layer, _ in cells})
    for r in md_layers:
        n, k, act = (sum(cells[r["layer"], b][i] for b in (29, 30, 31)) for i in range(3))
        assert (int(r["faults"]), int(r["SDC"])) == (n, k) == (90, k)
        assert printed(r["PVF (bits-weighted)"], sum(cells[r["layer"], b][1] / 30 for b in (29, 30, 31)) / 3)
        assert printed(r["pooled SDC/faults"], k / n)
        assert printed(r["activated"], act / n) and printed(r["PVF among activated"], k / act if act else float("nan"))
    n_all = sum(n for n, _, _ in cells.values())
    act_all = sum(a for _, _, a in cells.values())
    line = next(line for line in md.splitlines() if line.startswith("- activated faults (a stored bit changed): "))
    assert line.startswith(f"- activated faults (a stored bit changed): {act_all} of {n_all}, share ")
    assert 0 < act_all < n_all  # for |w| in [2^-63, 2) bit 29 is 1 already, bit 30 is 0; bit 31 is the sign
    rows = list(csv.DictReader(open(tmp_path / "report" / "pvf_by_bit.csv")))
    assert {"pvf", "pvf_pooled", "pvf_nf_sdc", "pvf_nf_excluded", "activated_share", "pvf_activated",
            "unsampled"} <= set(rows[0])
    # a bit position pools the layers at their share of the bits (elements of weight + bias)
    elements: dict[str, int] = {}
    for param in program.parameters.values():  # the toy's layers are its components
        elements[param.component] = elements.get(param.component, 0) + param.size
    assert elements == {"bottom_mlp.0": 48 * 20 + 48, "top_mlp.1": 32 * 48 + 32, "top_mlp.2": 10 * 32 + 10}
    assert set(elements) == {layer for layer, _ in cells}
    assert [int(r["value"]) for r in rows] == [29, 30, 31]
    for r in rows:
        b = int(r["value"])
        k = sum(cells[layer, b][1] for layer in elements)
        act = sum(cells[layer, b][2] for layer in elements)
        assert (int(r["n"]), int(r["sdc"]), int(r["activated"])) == (90, k, act)
        expected = sum(elements[layer] * cells[layer, b][1] / 30 for layer in elements) / sum(elements.values())
        assert float(r["pvf"]) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert float(r["pvf_pooled"]) == pytest.approx(k / 90, rel=1e-12, abs=1e-15)
    summary = json.load(open(tmp_path / "report" / "summary.json"))
    assert summary["weighting"] == "bits" and summary["unsampled_strata"] == 0
    # a stratum without trials (an interrupted campaign) is flagged, not dropped
    db = sqlite3.connect(str(tmp_path / "trials.sqlite"))
    with db:
        db.execute("DELETE FROM trials WHERE cell = 4")
    db.close()
    out = write_report(tmp_path, plots=False, report_dir=tmp_path / "r2", nonfinite="due")
    md = open(out["markdown"]).read()
    assert "1 of 9 strata have no trials yet" in md and "unsampled" in md
    assert "non-finite outputs: `due`" in md
    ((keys,),) = query(tmp_path / "trials.sqlite", "SELECT keys FROM cells WHERE cell = 4")
    gone = json.loads(keys)  # the stratum deleted above: its layer keeps 2 sampled bit strata of 3
    layers = {r["value"]: r for r in csv.DictReader(open(tmp_path / "r2" / "pvf_by_layer.csv"))}
    assert {v for v, r in layers.items() if int(r["unsampled"])} == {gone["layer"]}
    kept = [b for b in (29, 30, 31) if b != int(gone["bit"])]
    row = layers[gone["layer"]]
    assert (int(row["n"]), int(row["unsampled"]), int(row["cells"])) == (60, 1, 3)
    # re-applied policy "due": a fault with a NaN/Inf output is a DUE, no longer an SDC
    due_sdc = dict(query(tmp_path / "trials.sqlite", "SELECT bit, SUM(outcome = ? AND n_nonfinite = 0) FROM trials "
                         "WHERE layer = ? GROUP BY bit", oc.SDC, gone["layer"]))
    assert int(row["sdc"]) == sum(due_sdc[b] for b in kept)
    assert float(row["pvf"]) == pytest.approx(sum(due_sdc[b] / 30 for b in kept) / 2, abs=1e-15)
    assert float(row["hi"]) >= 1 / 3  # the unsampled third of the layer's bits takes its worst case
