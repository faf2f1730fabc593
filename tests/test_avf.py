"""AVF: live share vs ACE share, direct vs both joins (full-PVF agreement where every flip
reaches every read, read-weighted agreement where it does not), determinism / resume,
provenance, FIT arithmetic, CLI and sweep."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_config
from faults.common import stats
from faults.avf.context import AvfContext, AvfError
from faults.avf.direct import draw_site, occupied, run_direct, summarize_direct
from faults.avf.joined import PvfEntry, join_weights, joined_avf, ratio_interval, run_pvf
from faults.avf.study import JoinConfig
from faults.avf.store import AvfStore, StoreError as AvfStoreError
from faults.avf.fit import BITS_PER_MBIT, FitError, fit_table, parse_fit, raw_rates
from report_checks import assert_png, markdown_table, markdown_tables, printed, query

BUNDLED = Path(__file__).resolve().parents[1] / "accelsim" / "bundled"


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _load(model: str, batch: int = 16):
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / model / "model.onnx"))
    with np.load(BUNDLED / model / "eval_inputs.npz") as data:
        inputs = {k: data[k][:batch] for k in data.files}
    return program, inputs


def _ctx(model: str, preset: str, *sets: str, dtype: str | None = "fp32") -> AvfContext:
    program, inputs = _load(model)
    extra = ["precision.weight_bytes=4"] if dtype == "fp32" else []
    return AvfContext(program, inputs, load_config(preset, extra + list(sets)), dtype)


@pytest.fixture(scope="module")
def lenet_tpu():
    return _ctx("lenet5", "tpu_v1")


@pytest.mark.parametrize("model,sets", [("lenet5", ()), ("dlrm_small", ()), ("lenet5", ("array.dataflow=os",)),
                                        ("dlrm_small", ("array.dataflow=is",))])
def test_live_share_matches_exact_ace_share(model, sets):
    """Uniform (bit, cycle) sites are live exactly on the residency table's ACE bit-cycles."""
    ctx = _ctx(model, "edge_npu", *sets)
    for structure in ("hbm", "weight_sram", "embedding_sram", "pe"):
        ace = ctx.ace_fraction(structure)
        n = 1500 if structure != "hbm" else 600
        live = sum(not ctx.resolver.resolve(draw_site(ctx, structure, 3, t)[0]).masked for t in range(n))
        lo, hi = stats.clopper_pearson(live, n, 0.999)
        assert lo <= ace <= hi, (structure, live / n, ace)


def test_occupied_sampling_estimates_the_same_avf():
    """Sampling only occupied bit-cycles and scaling by the exact occupied share is unbiased."""
    ctx = _ctx("lenet5", "edge_npu")
    for structure in ("weight_sram", "pe"):
        rows = run_direct(ctx, structure, 400, seed=6, mode="occupied")
        share = occupied(ctx, structure)[2]
        assert 0 < share < 1
        live = sum(r["status"] == "live" for r in rows)
        lo, hi = stats.clopper_pearson(live, len(rows), 0.999)
        assert lo * share <= ctx.ace_fraction(structure) <= hi * share
        assert sum(r["status"] == "empty" and r["unrun"] for r in rows) < len(rows) // 2
        d = summarize_direct(ctx, structure, rows, mode="occupied")
        assert d.avf_sdc <= d.live_fraction and d.sdc_hi <= share


def test_direct_and_joined_agree_where_joined_assumptions_hold(lenet_tpu, tmp_path):
    """HBM on tpu_v1: every parameter is transferred once, so each live flip is the parameter fault."""
    ctx = lenet_tpu
    rows = run_direct(ctx, "hbm", 600, seed=11)
    live = [r for r in rows if r["status"] == "live"]
    assert live and all(r["full"] for r in live)
    direct = summarize_direct(ctx, "hbm", rows)
    pvf = run_pvf(ctx, str(tmp_path / "pvf"), 150, seed=2)
    joined = joined_avf(ctx, "hbm", pvf)
    assert direct.sdc > 0 and joined.avf_sdc > 0
    assert direct.sdc_lo <= joined.sdc_hi and joined.sdc_lo <= direct.sdc_hi
    # every live HBM flip reaches every read here: the read-weighted join is the full one
    rw = joined_avf(ctx, "hbm", pvf, "read_weighted")
    assert rw.avf_sdc == pytest.approx(joined.avf_sdc, rel=1e-12) and rw.kind == "read_weighted"
    # the joined numerator uses the exact ACE bit-cycles: with PVF = 1 it is the ACE share
    ones = {p: type(e)(1.0, 1.0, 1.0, 0.0, 0.0, 0.0) for p, e in pvf.items()}
    assert joined_avf(ctx, "hbm", ones).avf_sdc == pytest.approx(ctx.ace_fraction("hbm"), rel=1e-12)


def test_pe_read_weighting_is_the_mean_share_of_reads_reached():
    """With PVF = 1 everywhere the read-weighted join is the read-weighted ACE share, and the
    live PE sites of a weight-stationary array reach on average only part of the reads."""
    ctx = _ctx("lenet5", "edge_npu")
    rows = run_direct(ctx, "pe", 300, seed=4)
    live = [r for r in rows if r["status"] == "live"]
    assert any(not r["full"] for r in live) and all(0 < r["share"] <= 1 for r in live)
    assert all((r["share"] == 1.0) == bool(r["full"]) for r in live)
    ones = {p: PvfEntry(1, 1, 1, 0, 0, 0) for p in ctx.program.parameters}
    res = ctx.schedule.residency
    pe = res.select("pe")
    expected = res.ace_read_weighted[pe].sum() / (ctx.resolver.capacity_bits("pe") * ctx.total_cycles)
    assert joined_avf(ctx, "pe", ones, "read_weighted").avf_sdc == pytest.approx(expected, rel=1e-12)
    assert joined_avf(ctx, "pe", ones, "read_weighted").avf_sdc < 0.5 * joined_avf(ctx, "pe", ones).avf_sdc


def test_direct_is_deterministic_and_resumes(lenet_tpu, tmp_path):
    ctx = lenet_tpu
    plain = run_direct(ctx, "weight_sram", 80, seed=9, chunk_size=7)
    with AvfStore(tmp_path, {"study": 1}) as store:
        run_direct(ctx, "weight_sram", 30, seed=9, store=store, chunk_size=50)
        stored = run_direct(ctx, "weight_sram", 80, seed=9, store=store, chunk_size=16)
    key = ("trial", "address", "bit", "cycle", "status", "element", "outcome", "n_sdc")
    assert [tuple(r[k] for k in key) for r in plain] == [tuple(r[k] for k in key) for r in stored]
    with pytest.raises(AvfStoreError, match="different AVF study"):
        AvfStore(tmp_path, {"study": 2})


def test_dtype_must_match_config_and_int8_runs():
    program, inputs = _load("lenet5")
    with pytest.raises(AvfError, match="precision.weight_bytes=4"):
        AvfContext(program, inputs, load_config("edge_npu"), "fp32")
    ctx = AvfContext(program, inputs, load_config("edge_npu"))  # int8 from weight_bytes = 1
    assert ctx.dtype == "int8"
    rows = run_direct(ctx, "pe", 150, seed=1)
    assert sum(r["status"] == "live" for r in rows) > 10 and all(0 <= r["bit"] < 8 for r in rows)


def test_fit_arithmetic_and_options():
    rates = raw_rates(None, parse_fit(["weight_sram=500", "hbm=2,pe=0"]))
    assert rates["weight_sram"] == (500.0, "user (--fit)") and rates["embedding_sram"][0] == 1000.0
    avf = {"weight_sram": dict(avf_sdc=0.01, sdc_lo=0.005, sdc_hi=0.02, avf_due=0.001, due_lo=0.0, due_hi=0.002),
           "hbm": dict(avf_sdc=0.5, sdc_lo=0.4, sdc_hi=0.6, avf_due=0.0, due_lo=0.0, due_hi=0.01)}
    rows = {r.structure: r for r in fit_table(avf, {"weight_sram": 2 * BITS_PER_MBIT, "hbm": BITS_PER_MBIT}, rates)}
    assert rows["weight_sram"].raw_fit == 1000.0 and rows["weight_sram"].sdc_fit == pytest.approx(10.0)
    assert rows["weight_sram"].due_fit == pytest.approx(1.0)
    assert rows["hbm"].sdc_fit == pytest.approx(1.0)
    assert rows["total"].sdc_fit == pytest.approx(11.0) and rows["total"].sdc_fit_hi == pytest.approx(21.2)
    for bad in ("l2=1", "hbm", "hbm=x", "hbm=-1"):
        with pytest.raises(FitError):
            parse_fit([bad])


def _direct_from_store(path) -> dict[str, dict[str, int]]:
    """Per structure, straight from the site store: trials, unrun, live sites, SDC samples over
    the window, samples judged, events."""
    rows = query(path, "SELECT structure, COUNT(*), SUM(unrun), SUM(status = 'live'), SUM(window_sdc), "
                       "SUM(window_inputs), SUM(event_sdc) FROM sites GROUP BY structure")
    keys = ("trials", "unrun", "live", "sdc", "inputs", "events")
    return {r[0]: dict(zip(keys, r[1:])) for r in rows}


def _cli(*argv: str) -> int:
    from cli import avf_cmd

    parser = argparse.ArgumentParser()
    avf_cmd.add_arguments(parser)
    return avf_cmd.main(parser.parse_args(list(argv)))


def test_cli_study_report_and_sweep(tmp_path, capsys):
    model = str(BUNDLED / "dlrm_small" / "model.onnx")
    out = tmp_path / "study"
    args = [model, "--hw", "edge_npu", "--dtype", "fp32", "--structure", "weight_sram,embedding_sram,pe",
            "--trials", "120", "--pvf-trials", "20", "--batch", "16", "--no-progress"]
    assert _cli(*args, "--out", str(out), "--fit", "pe=100") == 0
    text = capsys.readouterr().out
    assert text.startswith((out / "report" / "avf.md").read_text())  # the command prints the report
    # expected values from the site store (SQL) and the hardware config, not from the study code
    hw = load_config("edge_npu", ["precision.weight_bytes=4"])
    bits = {"weight_sram": hw.weight_sram.size_bytes * 8, "embedding_sram": hw.embedding_sram.size_bytes * 8,
            "pe": hw.array.rows * hw.array.cols * 32}  # PE weight registers hold fp32 weights
    direct = _direct_from_store(out / "avf.sqlite")
    assert set(direct) == set(bits) and all(d["trials"] == 120 for d in direct.values())
    table = {r["structure"]: r for r in csv.DictReader((out / "avf_table.csv").open())}
    fit = {r["structure"]: r for r in csv.DictReader((out / "fit_table.csv").open())}
    md = (out / "report" / "avf.md").read_text()
    md_avf = {r["structure"]: r for r in markdown_table(md, "structure")}
    md_fit = {r["structure"]: r for r in markdown_tables(md)[1]}
    assert list(md_fit) == ["weight_sram", "embedding_sram", "pe", "total"]
    for s, d in direct.items():
        row = table[s]
        assert int(row["bits"]) == bits[s] and int(row["trials"]) == d["trials"] and int(row["unrun"]) == d["unrun"]
        assert float(row["live_fraction"]) == pytest.approx(d["live"] / d["trials"], rel=1e-12, abs=1e-15)
        assert float(row["direct_avf"]) == pytest.approx(d["sdc"] / d["inputs"], rel=1e-12, abs=1e-15)
        assert float(row["event_avf"]) == pytest.approx(d["events"] / d["trials"], rel=1e-12, abs=1e-15)
        # FIT = FIT/Mbit x Mbit x per-event AVF (every site ran on the whole batch of 16)
        rate = 100.0 if s == "pe" else 1000.0  # --fit pe=100; SRAM default 1000 FIT/Mbit
        assert float(fit[s]["fit_per_mbit"]) == rate and fit[s]["basis"] == "event"
        assert float(fit[s]["raw_fit"]) == pytest.approx(rate * bits[s] / 2**20, rel=1e-12)
        assert float(fit[s]["sdc_fit"]) == pytest.approx(rate * bits[s] / 2**20 * d["events"] / d["trials"],
                                                         rel=1e-12, abs=1e-15)
        assert (fit[s]["source"] == "user (--fit)") == (s == "pe")
        # the report prints the same numbers
        assert (int(md_avf[s]["bits"]), int(md_avf[s]["sites"]), int(md_avf[s]["masked w/o run"])) == \
            (bits[s], d["trials"], d["unrun"])
        assert printed(md_avf[s]["direct AVF per sample"].split(" [")[0], d["sdc"] / d["inputs"], sig=3)
        assert printed(md_avf[s]["live share"], d["live"] / d["trials"], sig=3)
        assert printed(md_fit[s]["FIT/Mbit"], rate, sig=3) and md_fit[s]["rate source"] == fit[s]["source"]
        assert printed(md_fit[s]["SDC FIT [lo, hi]"].split(" [")[0], float(fit[s]["sdc_fit"]), sig=3)
    assert float(fit["total"]["sdc_fit"]) == pytest.approx(sum(float(fit[s]["sdc_fit"]) for s in direct), rel=1e-12)
    for name in ("avf_by_structure.png", "pvf_vs_avf.png", "residency_timelines.png", "fit.png"):
        assert_png(out / "report" / name)
    first = (out / "avf_table.csv").read_text()
    assert _cli(*args, "--out", str(out), "--fit", "pe=100", "--pvf", str(out / "pvf")) == 0  # resume: same
    assert (out / "avf_table.csv").read_text() == first
    sweep = tmp_path / "sweep"
    assert _cli(*args, "--out", str(sweep), "--sweep", "weight_sram.size_kib=16,64", "--no-joined") == 0
    rows = list(csv.DictReader((sweep / "sweep.csv").open()))
    assert {r["value"] for r in rows} == {"16", "64"}
    assert {r["structure"] for r in rows} == {"weight_sram", "embedding_sram", "pe", "total"}
    for r in rows:  # each value's study folder holds its own sites: the rows are their rates
        if r["structure"] == "total":
            continue
        d = _direct_from_store(sweep / f"weight_sram.size_kib={r['value']}" / "avf.sqlite")[r["structure"]]
        assert float(r["direct_avf"]) == pytest.approx(d["sdc"] / d["inputs"], rel=1e-12, abs=1e-15)
        if r["structure"] == "weight_sram":  # the swept size: KiB x 8192 bits
            assert int(r["bits"]) == int(r["value"]) * 8192
    assert_png(sweep / "sweep.png")
    from cli.common import CommandError

    with pytest.raises(CommandError, match="--structure"):
        _cli(model, "--structure", "l3", "--out", str(tmp_path / "x"))
    with pytest.raises(AvfError, match="--sweep"):
        _cli(*args, "--out", str(tmp_path / "y"), "--sweep", "array.dataflow")


def test_joined_overestimates_when_flips_reach_only_later_reads(tmp_path):
    """The research gap: weight-stationary PE flips mid-fold reach only the later output rows
    (here: later samples), so the joined AVF (full PVF for every ACE bit-cycle) is too high; on HBM
    (every live flip is the parameter fault) the two agree. Criterion dev>1e-3 for more events."""
    program, inputs = _load("lenet5")
    ctx = AvfContext(program, inputs, load_config("edge_npu", ["precision.weight_bytes=4"]), "fp32",
                     criterion="dev>1e-3")
    pvf = run_pvf(ctx, str(tmp_path / "pvf"), 150, seed=0)
    rows = run_direct(ctx, "pe", 1200, seed=1, mode="occupied")
    pe = summarize_direct(ctx, "pe", rows, mode="occupied")
    pe_joined = joined_avf(ctx, "pe", pvf)
    assert pe.sdc_hi < pe_joined.sdc_lo  # not even the intervals overlap
    # the read-weighted join accounts for it: direct / read-weighted has an interval around 1
    point, lo, hi = ratio_interval([r["window_sdc"] for r in rows], [r["window_inputs"] for r in rows],
                                   occupied(ctx, "pe")[2], join_weights(ctx, "pe", "read_weighted"), pvf,
                                   ctx.resolver.capacity_bits("pe") * ctx.total_cycles)
    assert lo <= 1.0 <= hi and hi < pe_joined.avf_sdc / pe.avf_sdc
    rows = run_direct(ctx, "hbm", 600, seed=1)
    hbm, hbm_joined = summarize_direct(ctx, "hbm", rows), joined_avf(ctx, "hbm", pvf)
    assert hbm.sdc_lo <= hbm_joined.sdc_hi and hbm_joined.sdc_lo <= hbm.sdc_hi


def test_study_store_refuses_other_inputs_or_hardware(tmp_path):
    """Provenance: a study folder resumes only the same study on the same model and inputs."""
    from faults.avf.study import StudyConfig, run_study
    from faults.common.store import StoreError

    program, inputs = _load("lenet5")
    hw = load_config("edge_npu", ["precision.weight_bytes=4"])
    config = StudyConfig(structures=("pe",), trials=20, seed=3, join=JoinConfig(enabled=False))
    first = run_study(AvfContext(program, inputs, hw, "fp32"), config, tmp_path)
    other_inputs = {k: v[::-1].copy() for k, v in inputs.items()}  # same shapes, other samples
    with pytest.raises(StoreError, match=r"different AVF study \(differs in: inputs\)"):
        run_study(AvfContext(program, other_inputs, hw, "fp32"), config, tmp_path)
    with pytest.raises(StoreError, match=r"differs in: hardware"):
        run_study(AvfContext(program, inputs, load_config("edge_npu", ["precision.weight_bytes=4",
                                                                       "array.rows=8"]), "fp32"), config, tmp_path)
    # growing the study is the same study: the first 20 trials are kept as they were
    grown = run_study(AvfContext(program, inputs, hw, "fp32"),
                      StudyConfig(structures=("pe",), trials=30, seed=3, join=JoinConfig(enabled=False)), tmp_path)
    assert grown.structures["pe"].direct.trials == 30 and first.structures["pe"].direct.trials == 20
    with AvfStore(tmp_path, readonly=True) as store:
        assert [r["trial"] for r in store.rows("pe")] == list(range(30))


def test_join_refuses_pvf_of_another_model_or_inputs(tmp_path):
    from faults.avf.joined import pvf_table

    ctx = _ctx("lenet5", "edge_npu")
    run_pvf(ctx, str(tmp_path / "pvf"), 5, seed=1)
    assert set(pvf_table(ctx, str(tmp_path / "pvf"))) == set(ctx.program.parameters)
    program, inputs = _load("lenet5", batch=8)
    fewer = AvfContext(program, inputs, load_config("edge_npu", ["precision.weight_bytes=4"]), "fp32")
    with pytest.raises(AvfError, match="measured on other inputs"):
        pvf_table(fewer, str(tmp_path / "pvf"))
    program, inputs = _load("lenet5")
    retrained = program.with_parameter_values(
        {name: value * np.float32(1.01) for name, value in program.parameter_values.items()})
    other = AvfContext(retrained, inputs, load_config("edge_npu", ["precision.weight_bytes=4"]), "fp32")
    with pytest.raises(AvfError, match="measured on another model"):
        pvf_table(other, str(tmp_path / "pvf"))
