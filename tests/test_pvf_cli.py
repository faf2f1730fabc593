"""``accelsim pvf`` / ``accelsim report``: end to end on a small ONNX model with its own inputs."""
from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cli import main as cli
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


def test_pvf_then_report(model, tmp_path, capsys):
    out = tmp_path / "camp"
    argv = ["pvf", str(model), "--fault", "sbf", "--by", "layer,bit", "--trials", "8", "--seed", "3",
            "--out", str(out), "--workers", "1", "--no-progress"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "512 faults in 64 strata" in text  # 2 layers x 32 bits x 8
    assert _count(out) == 512
    report = out / "report"
    for name in ["report.md", "pvf_by_layer.csv", "pvf_by_bit.csv", "pvf_by_layer.png", "pvf_by_bit.png",
                 "summary.json"]:
        assert (report / name).is_file(), name
    rows = list(csv.DictReader(open(report / "pvf_by_layer.csv")))
    assert [r["value"] for r in rows] == ["fc1", "fc2"]
    assert all(int(r["n"]) == 256 for r in rows)
    bits = {int(r["value"]): r for r in csv.DictReader(open(report / "pvf_by_bit.csv"))}
    assert set(bits) == set(range(32))
    # mantissa LSBs never change the top-1 class; the exponent MSB often does
    assert int(bits[0]["sdc"]) == 0 and int(bits[30]["sdc"]) > 0
    for r in rows:
        assert float(r["lo"]) <= float(r["pvf"]) <= float(r["hi"])
    # re-running the same command resumes: nothing new
    assert cli.main(argv) == 0
    assert "(0 new" in capsys.readouterr().out
    assert _count(out) == 512
    # report with another criterion from the stored raw deviations
    assert cli.main(["report", str(out), "--criterion", "any", "--to", str(tmp_path / "any"), "--no-plots"]) == 0
    any_rows = {r["value"]: r for r in csv.DictReader(open(tmp_path / "any" / "pvf_by_layer.csv"))}
    for r in rows:
        assert int(any_rows[r["value"]]["sdc"]) >= int(r["sdc"])


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
    assert (out / "report" / "pvf_by_dtype.png").is_file()


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
    for name in ("lenet5_layer_bit", "dlrm_small_group", "dlrm_small_dtype"):
        assert f"## {name}" in text
        assert (out / name / "report" / "report.md").is_file()
    assert "| embedding |" in text and "| bottom_mlp |" in text and "| top_mlp |" in text
    assert (out / "lenet5_layer_bit" / "report" / "pvf_by_bit.png").is_file()
    assert (out / "dlrm_small_dtype" / "report" / "pvf_by_dtype.png").is_file()


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
