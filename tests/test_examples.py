"""The API walk-through in examples/ runs, its numbers are consistent with independent
references, and re-running it resumes without adding trials."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faults.common import outcome as oc
from report_checks import query

ROOT = Path(__file__).resolve().parents[1]


def _walkthrough():
    spec = importlib.util.spec_from_file_location("walkthrough", ROOT / "examples" / "walkthrough.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("walk")
    return out, _walkthrough().main(str(out))


def test_golden_logits_match_onnxruntime(result):
    import onnxruntime as ort

    _, r = result
    folder = ROOT / "accelsim" / "bundled" / "lenet5"
    with np.load(folder / "eval_inputs.npz") as data:
        image = data["image"][:16]
    expected = ort.InferenceSession(str(folder / "model.onnx")).run(["logits"], {"image": image})[0]
    np.testing.assert_allclose(r["logits"], expected, rtol=1e-5, atol=1e-5)


def test_pvf_table_matches_scipy_wilson(result):
    from scipy.stats import binomtest

    _, r = result
    table = r["pvf_by_layer"]
    assert list(table["value"]) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert (table["n"] == 150).all()
    for row in table.itertuples():
        ci = binomtest(int(row.sdc), int(row.n)).proportion_ci(0.95, method="wilson")
        assert row.pvf == row.sdc / row.n
        assert row.lo == pytest.approx(ci.low, abs=1e-12) and row.hi == pytest.approx(ci.high, abs=1e-12)


def _occupied_share(structure: str) -> float:
    """Share of the structure's bit-cycles held by a residency row (rows never overlap): each
    row holds 8·(addr_hi − addr_lo) bits in cycles write+1 .. evict−1; capacity from the config."""
    from faults import api

    model = api.load_model("lenet5")
    sched = api.schedule(model, api.load_inputs(model, batch=16), "edge_npu", ["precision.weight_bytes=4"])
    res, hw, total = sched.residency, sched.hw, sched.total_cycles
    rows = res.select(structure)
    span = np.minimum(res["evict_cycle"][rows], total) - np.maximum(res["write_cycle"][rows] + 1, 0)
    bits = 8 * (res["addr_hi"][rows] - res["addr_lo"][rows]) * np.maximum(span, 0)
    capacity = hw.weight_sram.size_bytes * 8 if structure == "weight_sram" else hw.array.rows * hw.array.cols * 32
    return float(bits.sum()) / (capacity * total)


def test_avf_study_counts_and_bounds(result):
    _, r = result
    sites = r["sites"]
    assert len(sites) == 400 and set(sites["structure"]) == {"weight_sram", "pe"}
    table = r["avf"].table().set_index("structure")
    for s in ("weight_sram", "pe"):
        rows = sites[sites["structure"] == s]
        # occupied sampling: the rate among sampled sites scaled by the occupied share
        assert table.loc[s, "trials"] == 200
        assert 0 <= table.loc[s, "direct_lo"] <= table.loc[s, "direct_avf"] <= table.loc[s, "direct_hi"] <= 1
        share = _occupied_share(s)
        assert 0 < share < 1
        rate = rows["window_sdc"].sum() / rows["window_inputs"].sum()
        assert table.loc[s, "direct_avf"] == pytest.approx(share * rate, rel=1e-12, abs=1e-15)
        assert table.loc[s, "direct_avf"] <= rows["n_sdc"].sum() / rows["n_inputs"].sum() + 1e-15
        assert np.isfinite(table.loc[s, "joined_avf"])
    assert table["direct_avf"].sum() > 0  # some sampled site spoiled an output


def test_rerun_resumes_without_new_trials(result):
    out, first = result
    again = _walkthrough().main(str(out))
    assert len(again["sites"]) == len(first["sites"])
    assert again["pvf_by_layer"].equals(first["pvf_by_layer"])
    assert again["avf"].table().equals(first["avf"].table())


def test_script_entry_point(result):
    out, _ = result
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "walkthrough.py"), str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # the tables it prints hold the stored counts (SQL on the campaign and the site store)
    lines = proc.stdout.splitlines()
    start = lines.index("PVF by layer (Wilson 95%):") + 2  # title, column header
    shown = [line.split() for line in lines[start:start + 5]]
    stored = query(out / "pvf" / "trials.sqlite",
                   "SELECT layer, COUNT(*), SUM(outcome = ?) FROM trials GROUP BY layer ORDER BY layer", oc.SDC)
    assert [(v, int(n), int(k)) for v, n, k, *_ in shown] == stored
    for v, n, k, pvf, lo, hi in shown:
        assert float(pvf) == pytest.approx(int(k) / int(n), abs=5e-7)
    live = query(out / "avf" / "avf.sqlite", "SELECT COUNT(*), SUM(status = 'live') FROM sites")[0]
    assert lines[-1] == f"{sum(n for _, n, _ in stored)} stored PVF trials; {live[0]} stored AVF sites ({live[1]} live)"
    assert lines[-1].startswith("750 stored PVF trials; 400 stored AVF sites")


def test_protection_study_of_the_walkthrough(result):
    """SECDED with interleaving 4 turns every cluster of <= 4 cells into correctable singles (no
    SDC, no DUE from the weight SRAM); parity on a PE register detects odd clusters only."""
    out, r = result
    rows = {row.structure: row for row in r["protect"]}
    ws, pe = rows["weight_sram"], rows["pe"]
    assert ws.sdc == ws.true_due == ws.false_due == 0 and ws.check_bit_overhead == 8 / 64
    assert pe.true_due + pe.false_due > 0 and pe.check_bit_overhead == 1 / 32
    stored = query(out / "protect" / "protect.sqlite", "SELECT cls, cluster FROM trials WHERE structure='pe'")
    assert all(cls not in ("true_due", "false_due") for cls, cluster in stored if cluster in (2, 4))
