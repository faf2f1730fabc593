"""The API walk-through in examples/ runs, its numbers are consistent with independent
references, and re-running it resumes without adding trials."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
        assert table.loc[s, "direct_avf"] <= rows["n_sdc"].sum() / rows["n_inputs"].sum() + 1e-15
        assert np.isfinite(table.loc[s, "joined_avf"])


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
    assert "PVF by layer" in proc.stdout and "750 stored PVF trials" in proc.stdout
