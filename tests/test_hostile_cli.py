"""Hostile command lines: output paths, numbers and options, input files, argument errors.

Every case ends in exit status 2 with exactly one stderr line ``accelsim <command>: error: ...``
naming what is wrong (never a traceback, a usage block or a silently changed meaning); the
valid controls beside them succeed with a real result. Cases run in-process through
``cli.main.main`` (what the console script runs); ``test_console_script_is_the_same`` checks
a few through the installed ``accelsim`` executable.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faults.common import outcome as oc
from hostile.helpers import BUNDLED, assert_one_line_error, run
from report_checks import query

LENET = str(BUNDLED / "lenet5" / "model.onnx")
DLRM = str(BUNDLED / "dlrm_small" / "model.onnx")
READ_ONLY = "/sys/accelsim-hostile"  # sysfs: nothing can be created there, not even by root
PVF = ["--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hostile_cli")
    (root / "file.txt").write_text("not a folder")
    (root / "folder").mkdir()
    (root / "store_is_folder" / "trials.sqlite").mkdir(parents=True)
    (root / "avf_store_is_folder" / "avf.sqlite").mkdir(parents=True)
    with np.load(BUNDLED / "lenet5" / "eval_inputs.npz") as z:
        image = z["image"][:4]
    with np.load(BUNDLED / "dlrm_small" / "eval_inputs.npz") as z:
        dense, ids = z["dense_x"][:4], z["sparse_ids"][:4]
    nan = image.copy()
    nan[1, 0, 3, 3] = np.nan
    big, negbig, neg = ids.copy(), ids.copy(), ids.copy()
    big[0, 0], negbig[0, 0], neg[0, 0] = 10**6, -10**6, -1
    arrays = {
        "nan": {"image": nan}, "empty": {"image": image[:0]}, "complex": {"image": image.astype(np.complex64)},
        "strings": {"image": np.full(image.shape, "a")}, "extra": {"image": image, "other": np.zeros(3)},
        "scalar": {"image": np.float32(1.0)}, "missing": {"picture": image},
        "ids_big": {"dense_x": dense, "sparse_ids": big}, "ids_negbig": {"dense_x": dense, "sparse_ids": negbig},
        "ids_neg": {"dense_x": dense, "sparse_ids": neg}, "ids_ok": {"dense_x": dense, "sparse_ids": ids},
        "ids_float": {"dense_x": dense, "sparse_ids": ids.astype(np.float32) + 0.5},
        "ids_batches": {"dense_x": dense, "sparse_ids": ids[:3]},
    }
    paths = {"root": str(root), "file": str(root / "file.txt"), "folder": str(root / "folder")}
    for name, data in arrays.items():
        np.savez(root / f"{name}.npz", **data)
        paths[name] = str(root / f"{name}.npz")
    (root / "garbage.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    np.save(root / "single.npy", image)
    paths.update(garbage=str(root / "garbage.npz"), single=str(root / "single.npy"))
    campaign = root / "campaign"
    status, _, err = run_quiet(["pvf", LENET, "--trials", "2", "--out", campaign, "--no-report"] + PVF)
    assert status == 0, err
    paths["campaign"] = str(campaign)
    return paths


def run_quiet(argv):
    """In-process run without capsys (module fixtures)."""
    import contextlib
    import io

    from cli import main as cli

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in argv])
    return status, None, err.getvalue()


# (id, argv with {placeholders} from env, phrase of the one error line)
OUTPUT_PATHS = [
    ("run-out-folder", ["run", LENET, "--inputs", "{ids_ok}", "--out", "{folder}"], "is a folder, not a file"),
    ("run-out-under-file", ["run", LENET, "--inputs", "{nan}", "--out", "{file}/x.npz"], "is a file, not a folder"),
    ("run-out-read-only", ["run", LENET, "--inputs", "{nan}", "--out", READ_ONLY + "/x.npz"], "cannot write in /sys"),
    ("run-out-device", ["run", LENET, "--inputs", "{nan}", "--out", "/dev/null"], "not a regular file"),
    ("run-out-suffix", ["run", LENET, "--inputs", "{nan}", "--out", "{root}/out.onnx"], "must end in .npz"),
    ("simulate-out-file", ["simulate", LENET, "--out", "{file}"], "is a file, not a folder"),
    ("simulate-out-under-file", ["simulate", LENET, "--out", "{file}/sim"], "is a file, not a folder"),
    ("simulate-out-read-only", ["simulate", LENET, "--out", READ_ONLY + "/sim"], "cannot write in /sys"),
    ("pvf-out-file", ["pvf", LENET, "--trials", "2", "--out", "{file}"] + PVF, "is a file, not a folder"),
    ("pvf-out-under-file", ["pvf", LENET, "--trials", "2", "--out", "{file}/camp"] + PVF, "is a file, not a folder"),
    ("pvf-out-read-only", ["pvf", LENET, "--trials", "2", "--out", READ_ONLY + "/camp"] + PVF, "cannot write in /sys"),
    ("pvf-store-is-folder", ["pvf", LENET, "--trials", "2", "--out", "{root}/store_is_folder"] + PVF,
     "trials.sqlite: is not a file"),
    ("avf-out-file", ["avf", LENET, "--trials", "2", "--out", "{file}", "--no-joined"], "is a file, not a folder"),
    ("avf-out-under-file", ["avf", LENET, "--trials", "2", "--out", "{file}/a", "--no-joined"], "is a file, not a folder"),
    ("avf-out-read-only", ["avf", LENET, "--trials", "2", "--out", READ_ONLY + "/a", "--no-joined"], "cannot write in /sys"),
    ("avf-store-is-folder", ["avf", LENET, "--trials", "2", "--batch", "4", "--no-joined", "--no-progress",
                             "--out", "{root}/avf_store_is_folder"], "avf.sqlite: is not a file"),
    ("report-to-file", ["report", "{campaign}", "--to", "{file}"], "is a file, not a folder"),
    ("report-to-under-file", ["report", "{campaign}", "--to", "{file}/r"], "is a file, not a folder"),
    ("report-to-read-only", ["report", "{campaign}", "--to", READ_ONLY + "/r"], "cannot write in /sys"),
    ("demo-out-file", ["demo", "--out", "{file}", "--scale", "0.01"], "is a file, not a folder"),
    ("demo-out-under-file", ["demo", "--out", "{file}/d", "--scale", "0.01"], "is a file, not a folder"),
    ("demo-out-read-only", ["demo", "--out", READ_ONLY + "/d", "--scale", "0.01"], "cannot write in /sys"),
]
NUMBERS = [
    ("bits-reversed", ["pvf", LENET, "--fault", "sbf:bits=30-23", "--out", "{root}/n1"] + PVF, "'30-23' is reversed"),
    ("bits-empty", ["pvf", LENET, "--fault", "sbf:bits=", "--out", "{root}/n2"] + PVF, "no bit positions"),
    ("bits-huge", ["pvf", LENET, "--fault", "sbf:bits=0-100000000000", "--out", "{root}/n3"] + PVF, "at most 32 bits"),
    ("confidence-above-1", ["pvf", LENET, "--confidence", "1.5", "--out", "{root}/n4"] + PVF, "confidence must be in (0, 1)"),
    ("confidence-nan", ["pvf", LENET, "--confidence", "nan", "--out", "{root}/n5"] + PVF, "got nan"),
    ("confidence-zero", ["pvf", LENET, "--confidence", "0", "--out", "{root}/n6"] + PVF, "confidence must be in (0, 1)"),
    ("avf-confidence-nan", ["avf", LENET, "--confidence", "nan", "--out", "{root}/n7"], "confidence must be in (0, 1)"),
    ("report-confidence", ["report", "{campaign}", "--confidence", "2"], "confidence must be in (0, 1)"),
    ("trials-beyond-int64", ["pvf", LENET, "--trials", str(10**21), "--out", "{root}/n8"] + PVF, "(2^62)"),
    ("trials-beyond-2^62", ["pvf", LENET, "--trials", str(2**62 + 1), "--out", "{root}/n9"] + PVF, "(2^62)"),
    ("avf-trials-beyond-2^62", ["avf", LENET, "--trials", str(2**62 + 1), "--out", "{root}/n10"], "2^62"),
    ("margin-tiny", ["pvf", LENET, "--margin", "1e-12", "--out", "{root}/n11"] + PVF, "(2^62) trials per stratum"),
    ("chunk-huge", ["pvf", LENET, "--chunk", "100000000", "--out", "{root}/n12"] + PVF, "chunk_size 100000000"),
    ("by-twice", ["pvf", LENET, "--by", "layer,layer", "--out", "{root}/n13"] + PVF, "'layer' twice"),
    ("dtype-twice", ["pvf", LENET, "--dtype", "fp32,fp32", "--out", "{root}/n14"] + PVF, "'fp32' twice"),
    ("seed-negative", ["pvf", LENET, "--seed", "-1", "--out", "{root}/n15"] + PVF, "seed must be >= 0"),
    ("set-inf", ["simulate", LENET, "--set", "clock_ghz=inf"], "'clock_ghz' must be at most"),
    ("set-nan", ["simulate", LENET, "--set", "clock_ghz=nan"], "'clock_ghz' must be > 0, got nan"),
    ("set-zero", ["simulate", LENET, "--set", "array.rows=0"], "'array.rows' must be > 0"),
    ("set-negative", ["simulate", LENET, "--set", "hbm.bandwidth_gbps=-5"], "'hbm.bandwidth_gbps' must be > 0"),
    ("set-huge", ["simulate", LENET, "--set", "weight_sram.size_kib=1e300"], "'weight_sram.size_kib' must be at most"),
    ("set-tiny", ["simulate", LENET, "--set", "hbm.bandwidth_gbps=1e-300"], "'hbm.bandwidth_gbps' must be at least"),
    ("limit-negative", ["simulate", LENET, "--limit", "-1"], "--limit must be >= 0"),
    ("simulate-batch-beyond", ["simulate", LENET, "--batch", "100000"], "holds only 360 samples"),
    ("avf-batch-beyond", ["avf", LENET, "--batch", "100000", "--out", "{root}/n16"], "holds only 360 samples"),
    ("avf-inputs-per-trial-negative", ["avf", LENET, "--inputs-per-trial", "-3", "--out", "{root}/n17"],
     "inputs_per_trial must be >= 0"),
    ("pvf-inputs-per-fault-negative", ["pvf", LENET, "--inputs-per-fault", "-1", "--out", "{root}/n18"] + PVF,
     "inputs_per_trial must be >= 0"),
    ("pvf-inputs-per-fault-beyond", ["pvf", LENET, "--inputs-per-fault", "1000", "--out", "{root}/n19"] + PVF,
     "hold only 360 samples"),
    ("max-inputs-zero", ["pvf", LENET, "--max-inputs", "0", "--out", "{root}/n20"] + PVF, "--max-inputs must be >= 1"),
    ("workers-zero", ["pvf", LENET, "--workers", "0", "--out", "{root}/n21", "--no-progress"], "--workers must be >= 1"),
    ("demo-scale-nan", ["demo", "--scale", "nan", "--out", "{root}/n22"], "--scale must be in (0, 1000]"),
    ("demo-scale-inf", ["demo", "--scale", "inf", "--out", "{root}/n23"], "--scale must be in (0, 1000]"),
    ("avf-structure-twice", ["avf", LENET, "--structure", "pe,pe", "--out", "{root}/n24"], "each structure once"),
    ("avf-fit-inf", ["avf", LENET, "--fit", "pe=inf", "--out", "{root}/n25"], "pe=inf"),
]
INPUTS = [
    ("empty-batch", ["run", LENET, "--inputs", "{empty}", "--out", "{root}/o.npz"], "has an empty batch"),
    ("complex-values", ["run", LENET, "--inputs", "{complex}", "--out", "{root}/o.npz"], "holds complex64 values"),
    ("string-values", ["run", LENET, "--inputs", "{strings}", "--out", "{root}/o.npz"], "the graph expects float32"),
    ("ids-beyond-table", ["run", DLRM, "--inputs", "{ids_big}", "--out", "{root}/o.npz"],
     "id 1000000 in '/Gather_output_0' is out of range for axis 0 of size 1460"),
    ("ids-below-minus-rows", ["run", DLRM, "--inputs", "{ids_negbig}", "--out", "{root}/o.npz"],
     "negative ids count from the end, as ONNX specifies"),
    ("ids-not-integers", ["run", DLRM, "--inputs", "{ids_float}", "--out", "{root}/o.npz"], "non-integer values"),
    ("batch-sizes-differ", ["run", DLRM, "--inputs", "{ids_batches}", "--out", "{root}/o.npz"], "for dim 'batch'"),
    ("pvf-ids-beyond-table", ["pvf", DLRM, "--inputs", "{ids_big}", "--trials", "2", "--out", "{root}/i1"] + PVF,
     "is out of range for axis 0"),
    ("simulate-empty-batch", ["simulate", LENET, "--inputs", "{empty}"], "has an empty batch"),
    ("scalar-with-batch", ["simulate", LENET, "--inputs", "{scalar}", "--batch", "2"], "is a scalar"),
    ("not-a-zip", ["run", LENET, "--inputs", "{garbage}", "--out", "{root}/o.npz"], "not a readable .npz file"),
    ("npy-not-npz", ["run", LENET, "--inputs", "{single}", "--out", "{root}/o.npz"], "a single array"),
    ("input-missing", ["run", LENET, "--inputs", "{missing}", "--out", "{root}/o.npz"], "missing graph input(s): image"),
    ("input-extra", ["run", LENET, "--inputs", "{extra}", "--out", "{root}/o.npz"], "unknown input(s) other"),
    ("inputs-folder", ["run", LENET, "--inputs", "{folder}", "--out", "{root}/o.npz"], "no such inputs file"),
    ("model-folder", ["inspect", "{folder}"], "no such ONNX file"),
    ("model-device", ["inspect", "/dev/null"], "no such ONNX file"),
    ("hw-not-toml", ["simulate", LENET, "--hw", "{garbage}"], "not valid TOML"),
    ("hw-binary-toml", ["simulate", LENET, "--hw", "{root}/binary.toml"], "not UTF-8 text"),
]
ARGUMENTS = [
    ("dtype-choice", ["inspect", LENET, "--dtype", "fp64"], "argument --dtype: invalid choice: 'fp64'"),
    ("run-dtype-choice", ["run", LENET, "--inputs", "{nan}", "--out", "{root}/o.npz", "--dtype", "fp64"],
     "invalid choice: 'fp64'"),
    ("trials-not-int", ["pvf", LENET, "--trials", "abc", "--out", "{root}/a1"], "invalid int value: 'abc'"),
    ("missing-required", ["run", LENET], "the following arguments are required: --inputs, --out"),
    ("interval-choice", ["report", "{campaign}", "--interval", "bogus"], "argument --interval: invalid choice"),
    ("sampling-choice", ["avf", LENET, "--sampling", "bogus", "--out", "{root}/a2"], "argument --sampling"),
    ("backend-choice", ["pvf", LENET, "--backend", "spark", "--out", "{root}/a3"], "argument --backend"),
    ("unknown-option", ["simulate", LENET, "--bogus", "1"], "unrecognized arguments: --bogus 1"),
]
CORPUS = [("output", *c) for c in OUTPUT_PATHS] + [("numbers", *c) for c in NUMBERS] + \
    [("inputs", *c) for c in INPUTS] + [("arguments", *c) for c in ARGUMENTS]


@pytest.mark.parametrize("category, case, argv, phrase", CORPUS, ids=[f"{c[0]}:{c[1]}" for c in CORPUS])
def test_hostile_command_line_is_one_line(env, capsys, category, case, argv, phrase):
    if case == "hw-binary-toml":
        Path(env["root"], "binary.toml").write_bytes(b"\xff\xfe\x00binary")
    argv = [a.format(**env) for a in argv]
    line = assert_one_line_error(capsys, argv, phrase)
    assert "Traceback" not in line and "usage:" not in line


def test_unknown_command_is_one_line(capsys):
    status, _, err = run(capsys, ["bogus"])
    assert status == 2 and len(err) == 1 and err[0].startswith("accelsim: error: argument command: invalid choice")


def test_refused_before_anything_is_written(env, capsys):
    """A bad option is refused before the campaign folder is even created."""
    out = Path(env["root"], "never")
    assert_one_line_error(capsys, ["pvf", LENET, "--confidence", "nan", "--out", out] + PVF, "confidence")
    assert_one_line_error(capsys, ["pvf", LENET, "--fault", "sbf:bits=30-23", "--out", out] + PVF, "reversed")
    assert not out.exists()


# ------------------------------------------------------------------------------ valid controls
def test_run_writes_and_overwrites_npz(env, capsys):
    out = Path(env["root"], "golden.npz")
    for _ in range(2):  # the second run replaces the file
        status, text, err = run(capsys, ["run", DLRM, "--inputs", env["ids_ok"], "--out", out])
        assert status == 0 and err == [], err
        with np.load(out) as z:
            assert z["ctr"].shape == (4, 1) and np.all((z["ctr"] > 0) & (z["ctr"] < 1))
            np.testing.assert_allclose(z["ctr"], _ort(DLRM, env["ids_ok"])["ctr"], rtol=1e-5, atol=1e-6)
    assert f"wrote {out}" in text


def _ort(model: str, inputs: str) -> dict[str, np.ndarray]:
    """Outputs of onnxruntime on the same model and inputs file (an independent engine)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    with np.load(inputs) as z:
        feeds = {k: z[k] for k in z.files}
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def test_negative_ids_follow_onnx(env, capsys):
    """-1 is the last row of the table (ONNX Gather), exactly as id rows-1."""
    neg, last = Path(env["root"], "neg_out.npz"), Path(env["root"], "last_out.npz")
    with np.load(env["ids_neg"]) as z:
        ids = z["sparse_ids"].copy()
    ids[0, 0] = 1459  # table 0 has 1460 rows
    np.savez(Path(env["root"], "ids_last.npz"), dense_x=np.load(env["ids_neg"])["dense_x"], sparse_ids=ids)
    assert run(capsys, ["run", DLRM, "--inputs", env["ids_neg"], "--out", neg])[0] == 0
    assert run(capsys, ["run", DLRM, "--inputs", Path(env["root"], "ids_last.npz"), "--out", last])[0] == 0
    np.testing.assert_array_equal(np.load(neg)["ctr"], np.load(last)["ctr"])
    np.testing.assert_allclose(np.load(neg)["ctr"], _ort(DLRM, env["ids_neg"])["ctr"], rtol=1e-5, atol=1e-6)


def test_nan_inputs_warn_once_and_run(env, capsys):
    out = Path(env["root"], "nan_out.npz")
    status, _, err = run(capsys, ["run", LENET, "--inputs", env["nan"], "--out", out])
    assert status == 0
    assert err == ["accelsim run: warning: input 'image' holds NaN/Inf values: the golden outputs of those samples "
                   "may be NaN/Inf too, and then every fault on them looks non-finite"]
    logits = np.load(out)["logits"]
    assert np.isnan(logits[1]).all() and np.isfinite(logits[[0, 2, 3]]).all()
    reference = _ort(LENET, env["nan"])["logits"]
    np.testing.assert_allclose(logits[[0, 2, 3]], reference[[0, 2, 3]], rtol=1e-5, atol=1e-5)


def test_nan_inputs_warn_once_in_a_campaign(env, capsys):
    status, text, err = run(capsys, ["pvf", LENET, "--inputs", env["nan"], "--trials", "2", "--no-report",
                                     "--out", Path(env["root"], "nan_camp")] + PVF)
    assert status == 0 and "2 faults in 1 strata" in text
    warnings = [line for line in err if ": warning: " in line]
    assert len(warnings) == 1 and warnings[0].startswith("accelsim pvf: warning: input 'image' holds NaN/Inf")


def test_outputs_into_fresh_nested_folders(env, capsys):
    sim = Path(env["root"], "new", "nested", "sim")
    status, _, err = run(capsys, ["simulate", LENET, "--batch", "2", "--out", sim, "--limit", "0"])
    assert status == 0, err
    summary = json.loads((sim / "summary.json").read_text())
    # LeNet-5's MACs per sample: conv1 6x28x28 x 25, conv2 16x10x10 x 150, fc 400x120 + 120x84 + 84x10
    assert summary["macs"] == 2 * (6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10)
    assert summary["hardware"] == "edge_npu" and sum(op["cycles"] for op in summary["ops"]) == summary["total_cycles"]
    report = Path(env["root"], "new", "report")
    status, text, _ = run(capsys, ["report", env["campaign"], "--to", report, "--no-plots"])
    md = (report / "report.md").read_text()
    assert status == 0 and text.startswith(md)  # written where asked, and printed
    ((n, k),) = query(Path(env["campaign"]) / "trials.sqlite", "SELECT COUNT(*), SUM(outcome = ?) FROM trials",
                      oc.SDC)
    assert n == 2 and f"- pooled count (unweighted): {n} faults, SDC {k} (" in md


def test_console_script_is_the_same(env, tmp_path):
    """A few cases through the installed ``accelsim`` executable: same line, same status."""
    exe = Path(sys.executable).with_name("accelsim")
    cases = [(["inspect", LENET, "--dtype", "fp64"], "accelsim inspect: error: argument --dtype: invalid choice"),
             (["pvf", LENET, "--fault", "sbf:bits=30-23", "--out", str(tmp_path / "c")], "accelsim pvf: error: bit range"),
             (["run", LENET, "--inputs", env["nan"], "--out", env["folder"]], "accelsim run: error: --out")]
    env_vars = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(tmp_path / "numba"))}
    for argv, prefix in cases:
        proc = subprocess.run([str(exe)] + argv, capture_output=True, text=True, timeout=120, env=env_vars)
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(prefix), proc.stderr
    assert not (tmp_path / "c").exists()
