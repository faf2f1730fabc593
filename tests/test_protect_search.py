"""Placement search: budget parsing, Pareto front and choice against brute force, predictions of
DUE classes identical to injection, predicted SDC vs direct within intervals, the end-to-end
search confirmed by injection, its report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_config
from faults.avf.context import AvfContext, AvfError
from faults.protect.candidates import contribution_ranking, default_candidates, parse_candidates
from faults.protect.confirm import run_search
from faults.protect.evaluate import evaluate_trials
from faults.protect.geometry import structure_areas
from faults.protect.predict import BitPvf, bit_pvf, predict_trials, predicted_rates
from faults.protect.scheme import SchemeError, parse_protection
from faults.protect.search import Budget, Option, SearchConfig, chosen_placement, combine, pareto_front
from faults.protect.upsets import parse_upset_model
from faults.common import stats
from report_checks import assert_png

BUNDLED = Path(__file__).resolve().parents[1] / "accelsim" / "bundled"


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def dlrm():
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / "dlrm_small" / "model.onnx"))
    with np.load(BUNDLED / "dlrm_small" / "eval_inputs.npz") as data:
        inputs = {k: data[k][:16] for k in data.files}
    return AvfContext(program, inputs, load_config("edge_npu", ["precision.weight_bytes=4"]), "fp32")


@pytest.fixture(scope="module")
def dlrm_pvf(dlrm, tmp_path_factory):
    return bit_pvf(dlrm, tmp_path_factory.mktemp("pvf"), trials=40, seed=0)


def test_budget_parsing():
    assert Budget.parse("check_bits=5%") == Budget(0.05, None)
    assert Budget.parse("check_bits=0.05, cycles=2%") == Budget(0.05, 0.02)
    assert Budget.parse(None) == Budget() and Budget().text == "none"
    for bad in ("check_bits", "bits=5%", "check_bits=x", "check_bits=-1%", "check_bits=1%,check_bits=2%"):
        with pytest.raises(SchemeError, match="--budget"):
            Budget.parse(bad)
    assert list(Budget(0.05, 0.01).allows(np.array([0.04, 0.06, 0.04]), np.array([0.0, 0.0, 0.02]))) == \
        [True, False, False]


def test_candidates_parse_and_defaults():
    structure, schemes = parse_candidates("weight_sram=none|secded:64,latency=1|secded:64,bits=31-23")
    assert structure == "weight_sram" and [s.latency_cycles for s in schemes] == [0, 1, 0]
    for bad in ("weight_sram", "weight_sram=secded:64|", "nowhere=none", "weight_sram=none|none",
                "weight_sram.bank=secded:64"):
        with pytest.raises(SchemeError):
            parse_candidates(bad)
    upset = parse_upset_model("mcu:1=0.5,3=0.5")
    ws = default_candidates("weight_sram", "fp16", upset)
    names = [s.name for s in ws]
    assert "secded:64,bits=15-10,elem=16,latency=1" in names and any("interleave=3" in n for n in names)
    assert [s.name for s in default_candidates("pe", "int8", upset)] == ["none:8", "parity:8", "secded:8"]
    assert all(s.latency_cycles == 0 for s in default_candidates("pe", "fp32", upset))


def test_pareto_front_matches_brute_force():
    """A point is on the front iff no point is at most as costly and as bad and better in one
    (of equal points, one is kept)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        cost, value = rng.integers(0, 6, 40).astype(float), rng.integers(0, 6, 40).astype(float)
        front = pareto_front(cost, value)
        for i in range(40):
            dominated = any(cost[j] <= cost[i] and value[j] <= value[i] and (cost[j] < cost[i] or value[j] < value[i])
                            for j in range(40))
            if dominated:
                assert not front[i]
        kept = {(cost[i], value[i]) for i in np.flatnonzero(front)}
        undominated = {(cost[i], value[i]) for i in range(40)
                       if not any(cost[j] <= cost[i] and value[j] <= value[i] and (cost[j] < cost[i] or value[j] < value[i])
                                  for j in range(40))}
        assert kept == undominated and front.sum() == len(kept)


def _option(structure, label, data, check, cycles, sdc, due=0.0):
    return Option(structure, label, (), (), 0, data, check, cycles, 100, sdc, sdc, sdc, due, due, due, 0.0, 0.0)


def test_combine_chooses_the_best_within_budget_by_brute_force():
    options = {"weight_sram": [_option("weight_sram", "none", 1000, 0, 100, 10.0),
                               _option("weight_sram", "parity", 1000, 16, 100, 4.0, 6.0),
                               _option("weight_sram", "secded", 1000, 125, 110, 0.5)],
               "hbm": [_option("hbm", "none", 3000, 0, 100, 3.0), _option("hbm", "secded", 3000, 375, 102, 0.2)]}
    for budget, weight in ((Budget(0.05, None), 0.0), (Budget(0.2, None), 0.0), (Budget(0.2, 0.05), 0.0),
                           (Budget(0.05, None), 1.0), (Budget(), 0.0)):
        config = SearchConfig(budget=budget, due_weight=weight)
        combos = combine(options, 100, config)
        best = None
        for i, a in enumerate(options["weight_sram"]):
            for j, b in enumerate(options["hbm"]):
                check = (a.check_bits + b.check_bits) / 4000
                slow = a.cycles / 100 - 1 + b.cycles / 100 - 1
                if (budget.check_bits is None or check <= budget.check_bits) and \
                        (budget.cycles is None or slow <= budget.cycles):
                    key = (a.sdc_fit + b.sdc_fit + weight * (a.due_fit + b.due_fit), check, slow)
                    best = min(best or (key, (i, j)), (key, (i, j)))
        assert tuple(combos.index[combos.chosen]) == best[1], (budget, weight)
    costly = {"weight_sram": options["weight_sram"][1:], "hbm": options["hbm"][1:]}
    nothing = combine(costly, 100, SearchConfig(budget=Budget(0.0, None)))
    assert nothing.chosen == -1 and not nothing.feasible.any()
    with pytest.raises(AvfError, match="fits the budget"):
        chosen_placement(costly, nothing, parse_upset_model("single"))


def test_bit_pvf_table(dlrm, dlrm_pvf):
    assert isinstance(dlrm_pvf, BitPvf)
    name = next(iter(dlrm.program.parameters))
    values = [dlrm_pvf.pvf(dlrm, name, b) for b in range(32)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert max(values[23:31]) > 0  # exponent flips of some parameter reach the output
    assert dlrm_pvf.mean(dlrm, name) == pytest.approx(np.mean(values), abs=0.05)
    ranking = contribution_ranking(dlrm, dlrm_pvf)
    densities = [c / b for _, c, b in ranking]
    assert densities == sorted(densities, reverse=True) and set(n for n, _, _ in ranking) <= set(dlrm.program.parameters)


@pytest.mark.parametrize("specs,upset", [([], "single"), (["weight_sram=parity:64", "hbm=secded:64"], "mcu:1=0.6,2=0.4"),
                                         (["weight_sram=secded:64,bits=31-23", "pe=parity:32"], "mcu:1=0.5,3=0.5")])
def test_prediction_classes_are_exact_and_sdc_agrees_with_injection(dlrm, dlrm_pvf, specs, upset):
    protection = parse_protection(specs, upset)
    rows = np.arange(dlrm.batch)
    for structure in ("weight_sram", "hbm", "pe"):
        areas = structure_areas(dlrm, structure, protection)
        trials = list(range(1500))
        predicted = predict_trials(dlrm, areas, protection.upset, structure, trials, 4, dlrm_pvf)
        measured = evaluate_trials(dlrm, areas, protection.upset, structure, trials, 4, rows)
        assert [p["cls"] for p in predicted] == [m["cls"] for m in measured]
        rates = predicted_rates(predicted)
        k = sum(m["event_sdc"] for m in measured)
        lo, hi = stats.wilson(k, len(trials), 0.999)
        assert rates.sdc_lo <= hi and lo <= rates.sdc_hi, (structure, rates, k)
        assert all(p["p_sdc"] == 0.0 for p in predicted if p["cls"] != "silent")


def test_component_in_a_protected_bank_loses_its_share_predicted_and_measured(dlrm, dlrm_pvf):
    """The most vulnerable parameters (by predicted contribution per byte) in a SECDED bank: the
    bank's upsets are all corrected, the weight SRAM's SDC rate drops, and the prediction of the
    re-scheduled chip agrees with injection on the same upsets."""
    from faults.protect.candidates import make_bank

    ranking = contribution_ranking(dlrm, dlrm_pvf)
    params = frozenset(n for n, _, _ in ranking[:3])
    bank = make_bank(dlrm, params, 0.25)
    banked = dlrm.variant(bank=bank)
    protection = parse_protection(["weight_sram.bank=secded:64"])
    areas = structure_areas(banked, "weight_sram", protection)
    trials, rows = list(range(3000)), np.arange(dlrm.batch)
    predicted = predict_trials(banked, areas, protection.upset, "weight_sram", trials, 6, dlrm_pvf)
    measured = evaluate_trials(banked, areas, protection.upset, "weight_sram", trials, 6, rows)
    assert [p["cls"] for p in predicted] == [m["cls"] for m in measured]
    assert not any(m["event_sdc"] for m in measured if m["area"] == "weight_sram.bank")
    assert any(m["cls"] == "corrected" for m in measured if m["area"] == "weight_sram.bank")
    k = sum(m["event_sdc"] for m in measured)
    rates = predicted_rates(predicted)
    lo, hi = stats.wilson(k, len(trials), 0.999)
    assert rates.sdc_lo <= hi and lo <= rates.sdc_hi
    (bare,) = structure_areas(dlrm, "weight_sram", parse_protection([]))
    unprotected = predicted_rates(predict_trials(dlrm, (bare,), protection.upset, "weight_sram", trials, 6, dlrm_pvf))
    assert rates.sdc < unprotected.sdc


def test_search_end_to_end_is_confirmed_by_injection(dlrm, dlrm_pvf, tmp_path):
    config = SearchConfig(structures=("weight_sram", "hbm", "pe"), upset=parse_upset_model("mcu:1=0.7,2=0.3"),
                          trials=600, confirm_trials=600, pvf_trials=40, budget=Budget.parse("check_bits=5%"),
                          bank_fractions=(0.25,), bank_coverages=(0.8, 1.0), seed=0)
    pvf_dir = tmp_path / "pvf"
    summary = run_search(dlrm, config, tmp_path / "search", pvf_dir=pvf_dir)
    assert summary["chosen"]["check_bit_overhead"] <= 0.05 + 1e-12 and summary["chosen"]["feasible"]
    for c in summary["comparison"] + summary["baseline_comparison"]:
        assert c["classes_identical"] and c["agree"], c
        assert c["predicted_due_fit"] == pytest.approx(c["measured_due_fit"]) or c["structure"] == "total"
    assert [c["structure"] for c in summary["baseline_comparison"]] == ["weight_sram", "hbm", "pe", "total"]
    assert summary["baseline_comparison"][-1]["measured_due_fit"] == 0  # nothing detects without a code
    out = tmp_path / "search"
    options = (out / "search_options.csv").read_text().splitlines()
    assert any("bank 25%" in line for line in options)
    combos = (out / "search_combinations.csv").read_text().splitlines()
    assert len(combos) - 1 == summary["combinations"] and sum(",True\n" in line + "\n" for line in combos) == 1
    from faults.protect.scheme import load_protection

    (out / "chosen.toml").write_text(summary["protection_toml"])
    assert load_protection(out / "chosen.toml").name == summary["protection"]
    again = run_search(dlrm, config, out, pvf_dir=pvf_dir)  # resumes; same answer
    assert json.dumps(again["comparison"]) == json.dumps(summary["comparison"])
    from faults.report.protect_report import write_protect_report

    written = write_protect_report(out)
    text = Path(written["markdown"]).read_text()
    assert "Chosen:" in text and "Confirmation by injection" in text and "Unprotected baseline" in text
    for png in written["plots"]:
        assert_png(png)


def test_search_on_int8_lenet_with_scales_is_confirmed(tmp_path):
    """The other bundled model in its native int8 (per-channel scales stored beside the weights,
    pseudo-parameters ``<name>#scale``): the search's prediction agrees with injection."""
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / "lenet5" / "model.onnx"))
    with np.load(BUNDLED / "lenet5" / "eval_inputs.npz") as data:
        inputs = {k: data[k][:16] for k in data.files}
    ctx = AvfContext(program, inputs, load_config("edge_npu"))
    assert ctx.dtype == "int8"
    config = SearchConfig(structures=("weight_sram", "pe"), upset=parse_upset_model("mcu:1=0.8,2=0.2"), trials=800,
                          confirm_trials=800, pvf_trials=30, budget=Budget.parse("check_bits=10%"),
                          bank_fractions=(0.25,), bank_coverages=(1.0,))
    summary = run_search(ctx, config, tmp_path)
    assert all(c["classes_identical"] and c["agree"] for c in summary["comparison"]), summary["comparison"]
    pe = [o for o in summary["chosen_options"] if o["structure"] == "pe"][0]
    assert pe["label"].endswith(":8")  # int8 registers: 8-bit words
    scale_strata = [k for k in bit_pvf(ctx, tmp_path / "pvf", 30, 0).wrong if k[1] == "scale"]
    assert scale_strata  # the scales have per-bit PVF of their own


def test_reach_probability_is_sampling_the_batch_without_replacement():
    """R(s) = mean of 1 − C(B−k, r)/C(B, r): checked against drawing r of B samples at random;
    s = 1 gives the batch PVF, and a flip that breaks every sample is certain to be seen by one."""
    from faults.protect.predict import reach_probability

    rng = np.random.default_rng(5)
    batch = 12
    wrong = rng.integers(0, 6, size=batch + 1).astype(float)
    ks = np.repeat(np.arange(batch + 1), wrong.astype(int))
    for reached in (0, 1, 3, 7, 12):
        draws = 20000
        bad = rng.random((draws, batch)).argsort(axis=1)[:, :reached]  # r distinct samples
        k = ks[rng.integers(0, ks.size, draws)]
        simulated = np.mean((bad < k[:, None]).any(axis=1))  # samples 0..k-1 are the wrong ones
        assert reach_probability(wrong, batch, reached / batch) == pytest.approx(simulated, abs=0.015)
    assert reach_probability(wrong, batch, 1.0) == pytest.approx(wrong[1:].sum() / wrong.sum())
    everything = np.zeros(batch + 1)
    everything[batch] = 10
    assert reach_probability(everything, batch, 1 / batch) == 1.0  # not 1/B, as scaling would say
    assert reach_probability(everything, batch, 0.5 / batch) == pytest.approx(0.5)  # linear below one sample


def test_weight_registers_of_a_cnn_are_predicted_where_samples_break_together(tmp_path):
    """LeNet-5's PE weight registers (fp32, edge_npu): an exponent flip mid-fold reaches the later
    rows only but breaks most samples it reaches at once. The prediction agrees with injection on
    the same upsets (scaling the batch PVF by the reached share understated it ~5×)."""
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / "lenet5" / "model.onnx"))
    with np.load(BUNDLED / "lenet5" / "eval_inputs.npz") as data:
        inputs = {k: data[k][:16] for k in data.files}
    ctx = AvfContext(program, inputs, load_config("edge_npu", ["precision.weight_bytes=4"]), "fp32")
    config = SearchConfig(structures=("pe",), upset=parse_upset_model("mcu:1=0.8,2=0.2"), trials=2000,
                          confirm_trials=2000, pvf_trials=30, budget=Budget.parse("check_bits=5%"), seed=0)
    summary = run_search(ctx, config, tmp_path)
    pe = summary["baseline_comparison"][0]
    assert pe["structure"] == "pe" and pe["scheme"].startswith("pe=none"), pe
    assert pe["measured_sdc_fit_lo"] > 0 and pe["classes_identical"] and pe["agree"], pe


def test_samples_reached_by_a_hit(dlrm):
    """Rows of fully connected GEMMs are samples, so the samples a hit reaches are its share of
    the reads times the batch; a conv weight's rows are sample × position, so a hit that reaches
    only some positions still reaches whole samples (at least share × B of them, at most B)."""
    from frontend import load_onnx
    from faults.protect.evaluate import classify, strike
    from faults.protect.predict import samples_reached

    protection = parse_protection([], "single")
    for structure in ("pe", "weight_sram"):
        areas = structure_areas(dlrm, structure, protection)
        hits = [h for t in range(400) for h in classify(dlrm, strike(dlrm, areas, protection.upset, 1, structure, t))[1]]
        assert hits
        for h in hits:
            assert samples_reached(dlrm, h) == pytest.approx(h.share * dlrm.batch, abs=1e-9), h
    program = load_onnx(str(BUNDLED / "lenet5" / "model.onnx"))
    with np.load(BUNDLED / "lenet5" / "eval_inputs.npz") as data:
        inputs = {k: data[k][:16] for k in data.files}
    lenet = AvfContext(program, inputs, load_config("edge_npu", ["precision.weight_bytes=4"]), "fp32")
    areas = structure_areas(lenet, "pe", protection)
    hits = [h for t in range(400) for h in classify(lenet, strike(lenet, areas, protection.upset, 1, "pe", t))[1]]
    partial = [h for h in hits if h.param.startswith("conv") and h.share < 1]
    assert partial
    for h in partial:
        assert h.share * lenet.batch - 1e-9 <= samples_reached(lenet, h) <= lenet.batch
    assert any(samples_reached(lenet, h) > h.share * lenet.batch + 0.5 for h in partial)


def test_a_rerun_that_chooses_otherwise_confirms_in_its_own_folder(dlrm, tmp_path):
    """Re-running a search into its folder with another budget (or after any change of the
    prediction) chooses another placement: it is confirmed beside the earlier one, not refused."""
    base = dict(structures=("weight_sram", "pe"), upset=parse_upset_model("single"), trials=300, confirm_trials=300,
                pvf_trials=20, bank_fractions=(0.25,), bank_coverages=(1.0,), confirm_baseline=False)
    first = run_search(dlrm, SearchConfig(budget=Budget.parse("check_bits=5%"), **base), tmp_path)
    second = run_search(dlrm, SearchConfig(budget=Budget.parse("check_bits=0%"), **base), tmp_path)
    assert first["protection"] != second["protection"] and first["confirm_dir"] != second["confirm_dir"]
    assert all(Path(s["confirm_dir"], "protect.sqlite").is_file() for s in (first, second))
    assert second["chosen"]["check_bit_overhead"] == 0
