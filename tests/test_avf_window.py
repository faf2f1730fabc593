"""Per-event AVF and the scrub interval (multi-inference residency) of direct and joined AVF."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim import executor
from accelsim.config import load_config
from faults.avf.context import AvfContext
from faults.avf.direct import draw_site, run_direct, summarize_direct
from faults.avf.joined import PvfEntry, joined_avf
from faults.common import outcome as oc
from faults.common.fault_models import single_bit_flip
from faults.inject import Fault

BUNDLED = Path(__file__).resolve().parents[1] / "accelsim" / "bundled"


@pytest.fixture(scope="module")
def ctx():
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / "lenet5" / "model.onnx"))
    with np.load(BUNDLED / "lenet5" / "eval_inputs.npz") as data:
        inputs = {k: data[k][:12] for k in data.files}
    return AvfContext(program, inputs, load_config("tpu_v1", ["precision.weight_bytes=4"]), "fp32",
                      criterion="dev>1e-3")


def test_event_is_any_incorrect_sample_of_the_batch(ctx):
    rows = run_direct(ctx, "weight_sram", 300, seed=5, inputs_per_trial=0)
    assert all(r["n_inputs"] == ctx.batch for r in rows)
    assert all(r["event_sdc"] == int(r["n_sdc"] > 0) for r in rows)
    d = summarize_direct(ctx, "weight_sram", rows)
    assert d.events == sum(r["n_sdc"] > 0 for r in rows) and d.events >= 1
    # one event per site at most, one incorrect sample at least per event
    assert d.avf_event >= d.avf_sdc and d.avf_event <= d.avf_sdc * ctx.batch + 1e-15
    part = summarize_direct(ctx, "weight_sram", run_direct(ctx, "weight_sram", 50, seed=5, inputs_per_trial=2))
    assert np.isnan(part.avf_event)  # not every sample judged: no event rate


def test_window_hbm_later_inferences_see_the_parameter_fault(ctx):
    """An HBM upset in inference j of a window of S also spoils inferences j+1..S-1, each with
    the parameter-level fault: checked against a full executor re-run with the corrupted value."""
    window = 4
    rows = run_direct(ctx, "hbm", 120, seed=8, inputs_per_trial=0, window=window)
    assert {r["inference"] for r in rows} == set(range(window))
    golden = executor.run(ctx.program, ctx.inputs).outputs[ctx.program.output_names[0]]
    checked = 0
    for r in rows:
        later = window - 1 - r["inference"]
        assert r["window_inputs"] == window * ctx.batch
        if r["status"] in ("unread", "padding") or later == 0:
            assert r["n_sdc_later"] == 0 and r["window_sdc"] == r["n_sdc"]
            continue
        assert r["window_sdc"] == r["n_sdc"] + later * r["n_sdc_later"]
        if checked < 12:
            st = ctx.fast.stored(r["param"])
            fault = Fault(r["param"], single_bit_flip(st, r["element"], r["element_bit"]), np.arange(ctx.batch))
            value = ctx.fast.corrupted_value(fault)
            full = executor.run(ctx.program, ctx.inputs, parameter_values={r["param"]: value})
            rec = oc.compare(golden, full.outputs[ctx.program.output_names[0]], np.arange(ctx.batch))
            assert int(np.sum(ctx.criterion.outcomes(rec) == oc.SDC)) == r["n_sdc_later"]
            checked += 1
    assert checked == 12


def test_window_draws_and_sram_rates(ctx):
    """The window option only adds the inference (drawn after the site): the (bit, cycle) site
    and the samples of a trial are those of S = 1, whose inference is always 0; SRAM copies
    live one inference only."""
    inferences = set()
    for t in range(20):
        plain, windowed = draw_site(ctx, "pe", 3, t, 0, "uniform"), draw_site(ctx, "pe", 3, t, 0, "uniform", 4)
        assert windowed[0] == plain[0] and np.array_equal(windowed[1], plain[1])
        assert plain[2] == 0 and 0 <= windowed[2] < 4
        inferences.add(windowed[2])
        assert draw_site(ctx, "pe", 4, t, 0, "uniform")[0] != plain[0]  # the site does depend on the seed
    assert inferences == {0, 1, 2, 3}  # 20 draws over 4 inferences
    rows = run_direct(ctx, "weight_sram", 100, seed=2, inputs_per_trial=0, window=3)
    assert all(r["window_sdc"] == r["n_sdc"] and r["window_inputs"] == 3 * ctx.batch for r in rows)


def test_joined_window_closed_form(ctx):
    """With PVF = 1: joined HBM over a window of S = (ACE + (S-1)/2 · T · read bits) / S / (bits · T);
    SRAM: cold / S."""
    ones = {p: PvfEntry(1.0, 1.0, 1.0, 0.0, 0.0, 0.0) for p in ctx.program.parameters}
    res = ctx.schedule.residency
    hbm = res.select("hbm")
    bits_t = ctx.resolver.capacity_bits("hbm") * ctx.total_cycles
    ace, read_bits = float(res["ace_bit_cycles"][hbm].sum()), float(res["bits"][hbm].sum())
    for window in (1, 2, 7):
        expected = (ace + (window - 1) / 2 * ctx.total_cycles * read_bits) / window / bits_t
        assert joined_avf(ctx, "hbm", ones, "full", window).avf_sdc == pytest.approx(expected, rel=1e-12)
        cold = joined_avf(ctx, "weight_sram", ones, "read_weighted").avf_sdc
        assert joined_avf(ctx, "weight_sram", ones, "read_weighted", window).avf_sdc == pytest.approx(cold / window)
