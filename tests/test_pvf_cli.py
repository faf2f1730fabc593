"""``accelsim pvf`` / ``accelsim report``: end to end on a small ONNX model with its own inputs."""
from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cli import main as cli
from faults.common import outcome as oc
from faults.common import stats
from report_checks import assert_png, interval, markdown_table, printed, query
from test_fastpath import _onnx_mlp


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "toy"
    folder.mkdir()
    path = folder / "model.onnx"
    _onnx_mlp(path)
    x = np.random.default_rng(0).standard_normal((30, 20)).astype(np.float32)
    np.savez(folder / "eval_inputs.npz", x=x)
    return path


def _count(out: Path) -> int:
    db = sqlite3.connect(str(out / "trials.sqlite"))
    try:
        return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    finally:
        db.close()


def _layer_elements(model: Path) -> dict[str, int]:
    """Elements per layer straight from the ONNX initializers (fc1.weight + fc1.bias, ...)."""
    import onnx

    out: dict[str, int] = {}
    for init in onnx.load(str(model)).graph.initializer:
        layer = init.name.split(".")[0]
        out[layer] = out.get(layer, 0) + int(np.prod(init.dims))
    return out


def test_pvf_then_report(model, tmp_path, capsys):
    out = tmp_path / "camp"
    argv = ["pvf", str(model), "--fault", "sbf", "--by", "layer,bit", "--trials", "8", "--seed", "3",
            "--out", str(out), "--workers", "1", "--no-progress"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "512 faults in 64 strata" in text  # 2 layers x 32 bits x 8
    assert _count(out) == 512
    report = out / "report"
    # expected numbers straight from the store (SQL) and the ONNX file, not from the report code
    store = out / "trials.sqlite"
    counts = {(layer, bit): (n, k) for layer, bit, n, k in query(
        store, "SELECT layer, bit, COUNT(*), SUM(outcome = ?) FROM trials GROUP BY layer, bit", oc.SDC)}
    assert len(counts) == 64 and {n for n, _ in counts.values()} == {8}
    elements = _layer_elements(model)
    assert elements == {"fc1": 32 * 20 + 32, "fc2": 32 * 10 + 10}
    rows = list(csv.DictReader(open(report / "pvf_by_layer.csv")))
    assert [r["value"] for r in rows] == ["fc1", "fc2"]
    assert all(int(r["n"]) == 256 for r in rows)
    for r in rows:
        k = [counts[r["value"], b][1] for b in range(32)]
        assert int(r["sdc"]) == sum(k)
        # the 32 bit strata of a layer hold equal shares of its bits: PVF = mean of k_b / 8
        assert float(r["pvf"]) == pytest.approx(sum(k) / 256, rel=1e-12, abs=1e-15)
        ref = stats.stratified(k, [8] * 32, [1.0] * 32)
        assert (float(r["lo"]), float(r["hi"])) == pytest.approx((ref.lo, ref.hi), rel=1e-9, abs=1e-12)
        assert float(r["lo"]) <= float(r["pvf"]) <= float(r["hi"])
    bits = {int(r["value"]): r for r in csv.DictReader(open(report / "pvf_by_bit.csv"))}
    assert set(bits) == set(range(32))
    total = sum(elements.values())
    for b, r in bits.items():
        k = [counts["fc1", b][1], counts["fc2", b][1]]
        assert int(r["n"]) == 16 and int(r["sdc"]) == sum(k)
        # a bit position pools the layers at their share of the bits (elements x 1 bit each)
        expected = (elements["fc1"] * k[0] / 8 + elements["fc2"] * k[1] / 8) / total
        assert float(r["pvf"]) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert float(r["pvf_pooled"]) == pytest.approx(sum(k) / 16, rel=1e-12, abs=1e-15)
    # mantissa LSBs never change the top-1 class; the exponent MSB often does
    assert int(bits[0]["sdc"]) == 0 and int(bits[30]["sdc"]) > 0
    # the whole campaign, bits-weighted: layer means at the layers' shares of the bits
    layer_pvf = {layer: sum(counts[layer, b][1] for b in range(32)) / 256 for layer in elements}
    headline = sum(elements[layer] * layer_pvf[layer] for layer in elements) / total
    summary = json.load(open(report / "summary.json"))
    sdc_total = sum(k for _, k in counts.values())
    assert (summary["faults"], summary["sdc"]) == (512, sdc_total)
    assert summary["pvf"] == pytest.approx(headline, rel=1e-12) and summary["lo"] <= headline <= summary["hi"]
    assert summary["pvf_pooled"] == pytest.approx(sdc_total / 512, rel=1e-12)
    # the markdown prints the same numbers
    md = (report / "report.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("- **PVF (bits-weighted over 64 strata): "))
    assert printed(line.split(": ")[1].split(" ")[0], headline)
    md_layers = markdown_table(md, "component")  # component == layer here: one table shows both
    assert [r["component"] for r in md_layers] == ["fc1", "fc2"]
    for r in md_layers:
        k = [counts[r["component"], b][1] for b in range(32)]
        assert (int(r["faults"]), int(r["SDC"])) == (256, sum(k))
        assert printed(r["PVF (bits-weighted)"], sum(k) / 256)
        lo, hi = interval(r["95% interval"])
        ref = stats.stratified(k, [8] * 32, [1.0] * 32)
        assert printed(lo, ref.lo) and printed(hi, ref.hi)
    md_bits = markdown_table(md, "bit")
    assert [int(r["bit"]) for r in md_bits] == list(range(32))
    assert [int(r["SDC"]) for r in md_bits] == [counts["fc1", b][1] + counts["fc2", b][1] for b in range(32)]
    for name in ("pvf_by_layer.png", "pvf_by_bit.png"):
        assert_png(report / name)
    # re-running the same command resumes: nothing new
    assert cli.main(argv) == 0
    assert "(0 new" in capsys.readouterr().out
    assert _count(out) == 512
    # report with another criterion from the stored raw deviations: "any" output change; only
    # faults that changed some judged output keep records, so it is the trials with records
    assert cli.main(["report", str(out), "--criterion", "any", "--to", str(tmp_path / "any"), "--no-plots"]) == 0
    any_rows = {r["value"]: r for r in csv.DictReader(open(tmp_path / "any" / "pvf_by_layer.csv"))}
    changed = dict(query(store, "SELECT layer, SUM(length(records) > 0) FROM trials GROUP BY layer"))
    for r in rows:
        assert int(any_rows[r["value"]]["sdc"]) == changed[r["value"]] >= int(r["sdc"])


def test_dtype_strata_and_target(model, tmp_path, capsys):
    out = tmp_path / "dt"
    assert cli.main(["pvf", str(model), "--dtype", "fp32,fp16,bf16,int8", "--by", "dtype",
                     "--target", "role=weight", "--trials", "20", "--out", str(out), "--workers", "1",
                     "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "report" / "pvf_by_dtype.csv")))
    assert [r["value"] for r in rows] == ["bf16", "fp16", "fp32", "int8"]
    db = sqlite3.connect(str(out / "trials.sqlite"))
    assert {r[0] for r in db.execute("SELECT DISTINCT role FROM trials")} == {"weight"}
    assert db.execute("SELECT MAX(bit) FROM trials WHERE dtype='int8'").fetchone()[0] <= 7
    counts = {d: (n, k) for d, n, k in db.execute(
        "SELECT dtype, COUNT(*), SUM(outcome = ?) FROM trials GROUP BY dtype", (oc.SDC,))}
    db.close()
    for r in rows:  # one stratum per dtype: the plain rate and its Wilson interval
        n, k = counts[r["value"]]
        assert (int(r["n"]), int(r["sdc"])) == (20, k) and n == 20
        assert float(r["pvf"]) == pytest.approx(k / 20, rel=1e-12, abs=1e-15)
        assert (float(r["lo"]), float(r["hi"])) == pytest.approx(stats.wilson(k, 20), rel=1e-9, abs=1e-12)
    assert_png(out / "report" / "pvf_by_dtype.png")


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--target", "component=nope"], "matches no parameter"),
        (["--fault", "zap"], "unknown fault model"),
        (["--fault", "sbf:bits=40", "--by", "bit"], "out of range"),
        (["--by", "colour"], "unknown stratum"),
        (["--criterion", "top5"], "unknown criterion"),
        (["--dtype", "fp8"], "unknown storage dtype"),
        (["--fault", "mbf", "--by", "bit"], "needs a fault model with a bit position"),
        (["--output", "probs"], "unknown graph output"),
        (["--half-width", "0.7"], "half-width"),
    ],
)
def test_one_line_errors(model, tmp_path, capsys, extra, message):
    argv = ["pvf", str(model), "--trials", "5", "--out", str(tmp_path / "e"), "--workers", "1", "--no-progress"]
    assert cli.main(argv + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("accelsim pvf: error:") and message in err[0], err


def test_other_campaign_in_same_dir_is_refused(model, tmp_path, capsys):
    out = tmp_path / "c"
    base = ["pvf", str(model), "--trials", "10", "--out", str(out), "--workers", "1", "--no-progress"]
    assert cli.main(base + ["--seed", "1"]) == 0
    before = _count(out)
    assert cli.main(base + ["--seed", "2"]) == 2
    assert "different PVF campaign (differs in: seed)" in capsys.readouterr().err
    assert _count(out) == before == 10  # one stratum, 10 trials


def test_missing_inputs(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    _onnx_mlp(path)
    assert cli.main(["pvf", str(path), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "m.onnx: no eval_inputs.npz beside the model" in capsys.readouterr().err


def test_demo_small_scale(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--scale", "0.02", "--workers", "1", "--no-progress"]) == 0
    text = (out / "demo.md").read_text()
    names = ("lenet5_layer_bit", "dlrm_small_group", "dlrm_small_dtype")
    sections = {}
    for i, name in enumerate(names):  # demo.md gathers each campaign's report under "## name"
        body = text.split(f"## {name}\n", 1)[1]
        sections[name] = body.split(f"## {names[i + 1]}\n", 1)[0] if i + 1 < len(names) else body
        report = (out / name / "report" / "report.md").read_text().splitlines()
        assert "\n".join(report[1:]).strip() in sections[name]
    # every table of demo.md prints the counts stored in its campaign (SQL on each store)
    group = query(out / "dlrm_small_group" / "trials.sqlite",
                  "SELECT grp, COUNT(*), SUM(outcome = ?) FROM trials GROUP BY grp", oc.SDC)
    assert sorted(g for g, _, _ in group) == ["bottom_mlp", "embedding", "top_mlp"]
    md_group = {r["group"]: r for r in markdown_table(sections["dlrm_small_group"], "group")}
    for g, n, k in group:  # 2000 x 0.02 = 40 faults per group
        assert (int(md_group[g]["faults"]), int(md_group[g]["SDC"])) == (n, k) and n == 40
        assert printed(md_group[g]["PVF (bits-weighted)"], k / n)
    dtype = query(out / "dlrm_small_dtype" / "trials.sqlite",
                  "SELECT dtype, COUNT(*), SUM(outcome = ?) FROM trials GROUP BY dtype ORDER BY dtype", oc.SDC)
    md_dtype = markdown_table(sections["dlrm_small_dtype"], "dtype")
    assert [(r["dtype"], int(r["faults"]), int(r["SDC"])) for r in md_dtype] == dtype
    assert [n for _, n, _ in dtype] == [20] * 4  # 1000 x 0.02 per dtype
    lenet = query(out / "lenet5_layer_bit" / "trials.sqlite",
                  "SELECT layer, COUNT(*), SUM(outcome = ?), COUNT(DISTINCT bit) FROM trials GROUP BY layer", oc.SDC)
    assert [layer for layer, *_ in lenet] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    md_lenet = {r["component"]: r for r in markdown_table(sections["lenet5_layer_bit"], "component")}
    for layer, n, k, distinct_bits in lenet:  # round(40 x 0.02) = 1 fault per (layer, bit) stratum
        assert (n, distinct_bits) == (32, 32)
        assert (int(md_lenet[layer]["faults"]), int(md_lenet[layer]["SDC"])) == (n, k)
        assert printed(md_lenet[layer]["PVF (bits-weighted)"], k / n)  # equal bit shares, n = 1 each
    assert_png(out / "lenet5_layer_bit" / "report" / "pvf_by_bit.png")
    assert_png(out / "dlrm_small_dtype" / "report" / "pvf_by_dtype.png")


def test_only_user_errors_are_one_line(monkeypatch, capsys):
    """A UserError is one line (exit 2); any other exception is a bug and propagates."""
    from accelsim.errors import UserError
    from cli import inspect_cmd

    def user_error(args):
        raise UserError("bad thing at X\nsecond line")

    monkeypatch.setattr(inspect_cmd, "main", user_error)
    assert cli.main(["inspect", "m.onnx"]) == 2
    assert capsys.readouterr().err == "accelsim inspect: error: bad thing at X\n"
    with pytest.raises(UserError):
        cli.main(["--debug", "inspect", "m.onnx"])

    def bug(args):
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(inspect_cmd, "main", bug)
    with pytest.raises(ValueError, match="internal inconsistency"):
        cli.main(["inspect", "m.onnx"])


def test_argument_errors_are_one_line(capsys):
    assert cli.main(["run", "m.onnx", "--inputs", "x.npz", "--out", "y.npz", "--dtype", "fp64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("accelsim run: error: argument --dtype: invalid choice: 'fp64'") and err.count("\n") == 1
    assert cli.main(["frobnicate"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
