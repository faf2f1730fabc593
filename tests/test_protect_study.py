"""Protection study invariants on real models: SECDED and parity under single upsets, multi-bit
upsets in one SECDED word, interleaving, check-bit hits, the halt/zero policies, a protected
bank, determinism / resume, FIT arithmetic, the double-upset term."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.schedule.placement import ProtectedBank
from faults.avf.context import AvfContext
from faults.avf.fit import BITS_PER_MBIT, raw_rates
from faults.common import stats
from faults.protect.candidates import bank_bytes
from faults.protect.codes import CORRECTED, DETECTED, MISCORRECTED, UNDETECTED
from faults.protect.evaluate import classify, strike
from faults.protect.geometry import structure_areas
from faults.protect.scheme import Protection, decode_cycles_of, parse_protection
from faults.protect.study import ProtectConfig, load_rows, load_trials, run_protect

BUNDLED = Path(__file__).resolve().parents[1] / "accelsim" / "bundled"
STRUCTURES = ("weight_sram", "hbm", "pe")


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _ctx(model: str, preset: str = "edge_npu", *sets: str) -> AvfContext:
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / model / "model.onnx"))
    with np.load(BUNDLED / model / "eval_inputs.npz") as data:
        inputs = {k: data[k][:16] for k in data.files}
    return AvfContext(program, inputs, load_config(preset, ["precision.weight_bytes=4", *sets]), "fp32")


@pytest.fixture(scope="module")
def lenet():
    return _ctx("lenet5")


@pytest.fixture(scope="module")
def dlrm():
    return _ctx("dlrm_small")


def _study(ctx, specs, upset, out, trials=600, structures=STRUCTURES, **kw):
    protection = parse_protection(list(specs), upset)
    config = ProtectConfig(structures=structures, trials=trials, seed=3, **kw)
    rows = run_protect(ctx, protection, config, out)
    return {r.structure: r for r in rows}, {s: load_trials(out, s) for s in structures}


def _wilson_contains(k: int, n: int, p: float, confidence: float = 0.999) -> bool:
    lo, hi = stats.wilson(k, n, confidence)
    return lo <= p <= hi


@pytest.mark.parametrize("model", ["lenet", "dlrm"])
def test_secded_single_upsets_give_no_sdc_and_no_due(model, request, tmp_path):
    ctx = request.getfixturevalue(model)
    rows, trials = _study(ctx, ["weight_sram=secded:64", "hbm=secded:64", "pe=secded:32"], "single", tmp_path)
    for s in STRUCTURES:
        assert rows[s].sdc == rows[s].true_due == rows[s].false_due == 0
        assert rows[s].sdc_fit == 0.0 and rows[s].due_fit == 0.0
        classes = {t["cls"] for t in trials[s]}
        assert classes <= {"corrected", "unread"} and "corrected" in classes, (s, classes)
    # the same upsets without protection do reach outputs (the zeros above are not vacuous)
    bare, _ = _study(ctx, [], "single", tmp_path / "bare", trials=1500)
    assert sum(bare[s].sdc for s in STRUCTURES) > 0


@pytest.mark.parametrize("structure", STRUCTURES)
def test_parity_single_upsets_are_due_at_the_live_share(lenet, structure, tmp_path):
    """parity over one storage unit (byte / register): no SDC, and DUE (true + false) on exactly
    the share of upsets whose unit is read afterwards — the residency table's ACE share."""
    spec = f"{structure}=parity:32" if structure == "pe" else f"{structure}=parity:8"
    rows, trials = _study(lenet, [spec], "single", tmp_path, trials=3000, structures=(structure,))
    r = rows[structure]
    assert r.sdc == 0
    due = r.true_due + r.false_due
    assert due > 0
    assert _wilson_contains(due, r.trials, lenet.ace_fraction(structure)), (due, r.trials, lenet.ace_fraction(structure))
    # a check-bit hit can only be a false DUE (no data bit wrong)
    areas = structure_areas(lenet, structure, parse_protection([spec]))
    checked = 0
    for t in range(400):
        s = strike(lenet, areas, parse_protection([spec]).upset, 3, structure, t)
        if not s.raw_data.any():
            cls, hits = classify(lenet, s)
            assert cls in ("false_due", "unread") and not hits
            checked += 1
    assert checked > 0


def test_parity_word_due_matches_the_words_reads_trial_by_trial(dlrm, tmp_path):
    """parity:64: DUE iff some byte of the struck word is read after the upset (resolved byte by
    byte here), true DUE iff the wrong bit's own byte is."""
    protection = parse_protection(["weight_sram=parity:64"])
    (area,) = structure_areas(dlrm, "weight_sram", protection)
    seen = {"true_due": 0, "false_due": 0}
    for t in range(600):
        s = strike(dlrm, (area,), protection.upset, 5, "weight_sram", t)
        cls, _ = classify(dlrm, s)
        word = int(s.codewords[0])
        live = [not dlrm.resolver.resolve(site).masked for site in area.sites(word, np.arange(0, 64, 8), s.cycle)
                if site is not None]
        wrong = np.flatnonzero(s.raw_data[0])
        own = bool(wrong.size) and not dlrm.resolver.resolve(area.sites(word, wrong, s.cycle)[0]).masked
        expected = ("true_due" if own else "false_due") if any(live) else "unread"
        assert cls == expected, (t, cls, expected)
        seen[cls] = seen.get(cls, 0) + 1
    assert seen["true_due"] > 0 and seen["false_due"] > 0


def test_two_bit_upset_in_one_secded_word_is_due_never_sdc(dlrm, tmp_path):
    rows, trials = _study(dlrm, ["weight_sram=secded:64", "hbm=secded:64", "pe=secded:32"], "mcu:2=1", tmp_path,
                          trials=800)
    for s in STRUCTURES:
        assert rows[s].sdc == 0
        outcomes = {int(c) for t in trials[s] for c in t["outcome_codes"].split(",")}
        assert outcomes == {DETECTED}, (s, outcomes)
        assert {t["cls"] for t in trials[s]} <= {"true_due", "false_due", "unread"}
    assert sum(rows[s].true_due for s in STRUCTURES) > 0


def test_three_bit_upsets_are_sometimes_miscorrected(dlrm, tmp_path):
    rows, trials = _study(dlrm, ["weight_sram=secded:64", "hbm=secded:64"], "mcu:3=1", tmp_path,
                          trials=800, structures=("weight_sram", "hbm"))
    outcomes = [int(c) for s in trials for t in trials[s] for c in t["outcome_codes"].split(",")]
    assert outcomes.count(MISCORRECTED) > 0 and outcomes.count(DETECTED) > 0
    assert set(outcomes) <= {MISCORRECTED, DETECTED, UNDETECTED}
    assert any(t["cls"] == "silent" for s in trials for t in trials[s])


@pytest.mark.parametrize("degree", [3, 4])
def test_interleaving_turns_clusters_into_correctable_singles(dlrm, degree):
    """Clusters of up to ``degree`` cells hit each codeword of a full physical row at most once:
    SECDED corrects all of them. Only the last row, holding fewer than ``degree`` codewords when
    the structure's codewords are not a multiple of it, can see two bits of one word."""
    protection = parse_protection([f"weight_sram=secded:64,interleave={degree}", f"hbm=secded:64,interleave={degree}"],
                                  f"mcu:1=0.4,2=0.3,{degree}=0.3")
    plain = parse_protection(["weight_sram=secded:64", "hbm=secded:64"], protection.upset.name)
    for structure in ("weight_sram", "hbm"):
        (area,) = structure_areas(dlrm, structure, protection)
        last_full = area.codewords // degree * degree
        multi = 0
        for t in range(800):
            s = strike(dlrm, (area,), protection.upset, 2, structure, t)
            assert s.codewords.size == min(s.cluster, degree) or int(s.codewords.max()) >= last_full
            for word, outcome in zip(s.codewords.tolist(), s.outcomes.tolist()):
                assert outcome == CORRECTED or word >= last_full, (structure, t, word, outcome)
            multi += s.cluster > 1
        assert multi > 100
        # without interleaving the same clusters are double errors: detected
        (bare,) = structure_areas(dlrm, structure, plain)
        outcomes = [o for t in range(300) for o in strike(dlrm, (bare,), plain.upset, 2, structure, t).outcomes]
        assert DETECTED in outcomes


def test_zero_policy_runs_the_zeroed_word(dlrm, tmp_path):
    rows, trials = _study(dlrm, ["hbm=parity:64,policy=zero", "pe=parity:32,policy=zero"], "single", tmp_path,
                          trials=800, structures=("hbm", "pe"))
    for s in ("hbm", "pe"):
        classes = [t["cls"] for t in trials[s]]
        assert "zeroed" in classes and "true_due" not in classes and "false_due" not in classes
        assert rows[s].due_fit == 0.0
        assert all(t["elements"] > 0 for t in trials[s] if t["cls"] == "zeroed" and t["n_sdc"] > 0)


def test_protected_bank_removes_the_banks_share(dlrm, tmp_path):
    """Parameters of one component in a SECDED bank: upsets in the bank never reach an output,
    and the unprotected rest behaves as without any protection."""
    comps = sorted({p.component for p in dlrm.program.parameters.values()})
    params = frozenset(n for n, p in dlrm.program.parameters.items() if p.component == comps[0])
    bank = ProtectedBank(params, bank_bytes(dlrm, 0.25))
    ctx = dlrm.variant(bank=bank)
    protection = parse_protection(["weight_sram.bank=secded:64"])
    areas = structure_areas(ctx, "weight_sram", protection)
    assert [a.name for a in areas] == ["weight_sram", "weight_sram.bank"]
    assert areas[1].bit_hi - areas[1].bit_lo == 8 * bank.weight_sram_bytes
    run_protect(ctx, protection, ProtectConfig(structures=("weight_sram",), trials=1500, seed=1), tmp_path)
    trials = load_trials(tmp_path, "weight_sram")
    in_bank = [t for t in trials if t["area"] == "weight_sram.bank"]
    assert in_bank and {t["cls"] for t in in_bank} <= {"corrected", "unread"}
    assert any(t["cls"] == "corrected" for t in in_bank)
    rest = [t for t in trials if t["area"] == "weight_sram"]
    assert {t["cls"] for t in rest} <= {"silent", "unread"}


def test_rows_fit_arithmetic_and_columns(lenet, tmp_path):
    rows, trials = _study(lenet, ["weight_sram=parity:64", "pe=parity:32"], "single", tmp_path, trials=400,
                          fit_per_mbit=(("weight_sram", 500.0),))
    rate = raw_rates(lenet.hw, {"weight_sram": 500.0})
    for s in STRUCTURES:
        r = rows[s]
        assert r.fit_per_mbit == rate[s][0]
        assert r.raw_fit == pytest.approx(r.fit_per_mbit * (r.data_bits + r.check_bits) / BITS_PER_MBIT)
        assert r.sdc_fit == pytest.approx(r.sdc / r.trials * r.raw_fit)
        assert r.due_fit == pytest.approx((r.true_due + r.false_due) / r.trials * r.raw_fit)
        assert r.sdc_fit_lo <= r.sdc_fit <= r.sdc_fit_hi
    assert rows["weight_sram"].check_bit_overhead == pytest.approx(1 / 64)
    assert rows["pe"].check_bit_overhead == pytest.approx(1 / 32)
    total = rows["total"]
    assert total.sdc_fit == pytest.approx(sum(rows[s].sdc_fit for s in STRUCTURES))
    header = (tmp_path / "protect_table.csv").read_text().splitlines()[0].split(",")
    for column in ("structure", "scheme", "check_bit_overhead", "sdc_fit", "sdc_fit_lo", "sdc_fit_hi", "due_fit",
                   "due_fit_lo", "due_fit_hi", "false_due_fit"):
        assert column in header
    assert [r.structure for r in load_rows(tmp_path)] == [*STRUCTURES, "total"]


def test_resume_and_determinism(lenet, tmp_path):
    protection = parse_protection(["weight_sram=secded:64", "hbm=parity:64"], "mcu:1=0.5,2=0.5")
    config = ProtectConfig(trials=300, seed=9, chunk_size=50)
    first = run_protect(lenet, protection, config, tmp_path / "a")
    again = run_protect(lenet, protection, config, tmp_path / "a")  # resumes: nothing re-run
    other = run_protect(lenet, protection, config, tmp_path / "b")
    assert repr(first) == repr(again) == repr(other)  # (the total row holds a NaN)
    assert load_trials(tmp_path / "a", "hbm") == load_trials(tmp_path / "b", "hbm")
    from faults.common.store import StoreError

    with pytest.raises(StoreError):
        run_protect(lenet, parse_protection(["weight_sram=parity:64"]), config, tmp_path / "a")


def test_decode_latency_slows_the_inference(lenet, tmp_path):
    protection = parse_protection(["weight_sram=secded:64,latency=3", "hbm=symbol:16+3,latency=4"])
    assert decode_cycles_of(protection) == {"weight_sram": 3, "hbm": 4}
    slow = lenet.variant(decode_cycles=decode_cycles_of(protection))
    assert slow.total_cycles > lenet.total_cycles
    rows = run_protect(slow, protection, ProtectConfig(structures=("hbm",), trials=50), tmp_path,
                       baseline_cycles=lenet.total_cycles)
    assert rows[0].cycle_overhead == pytest.approx(slow.total_cycles / lenet.total_cycles - 1)


def test_double_upset_term_only_for_correcting_codes_and_grows_with_the_scrub_period(lenet, tmp_path):
    def double(spec, scrub):
        rows, _ = _study(lenet, [spec], "single", tmp_path / f"{spec}-{scrub}", trials=20, structures=("hbm",),
                         scrub_interval=scrub)
        return rows["hbm"].double_upset_fit

    assert double("hbm=parity:64", 10) == 0.0
    one, ten = double("hbm=secded:64", 1), double("hbm=secded:64", 10)
    assert one > 0 and ten == pytest.approx(10 * one)
    (area,) = structure_areas(lenet, "hbm", parse_protection(["hbm=secded:64"]))
    rate = raw_rates(lenet.hw)["hbm"][0]
    per_word_hour = rate * 72 / BITS_PER_MBIT / 1e9
    tau = lenet.total_cycles / (lenet.hw.clock_ghz * 1e9) / 3600
    assert one == pytest.approx(area.codewords * per_word_hour ** 2 * tau / 2 * 1e9)
    assert math.isfinite(one)


def test_protection_objects_are_not_mutated(lenet):
    p = Protection()
    q = p.with_scheme("hbm", parse_protection(["hbm=secded:64"]).scheme("hbm"))
    assert p.schemes == () and q.scheme("hbm").code.name == "secded:64"


def test_trials_per_structure(lenet, tmp_path):
    config = ProtectConfig(trials=40, trials_for=(("weight_sram", 130),), seed=2, chunk_size=64)
    rows = {r.structure: r for r in run_protect(lenet, parse_protection([]), config, tmp_path)}
    assert rows["weight_sram"].trials == 130 and rows["hbm"].trials == rows["pe"].trials == 40
    assert rows["total"].trials == 210
    # the first 40 upsets of the weight SRAM are those of a 40-upset study
    small = run_protect(lenet, parse_protection([]), ProtectConfig(trials=40, seed=2), tmp_path / "small")
    assert load_trials(tmp_path / "small", "weight_sram") == load_trials(tmp_path, "weight_sram", 40)
    assert small[0].trials == 40


def test_two_workers_give_the_same_trials(dlrm, tmp_path):
    protection = parse_protection(["weight_sram=parity:64", "pe=secded:32"], "mcu:1=0.6,2=0.4")
    config = ProtectConfig(trials=400, seed=4, chunk_size=50)
    one = run_protect(dlrm, protection, config, tmp_path / "one")
    two = run_protect(dlrm, protection, config, tmp_path / "two", workers=2)
    assert repr(one) == repr(two)
    for s in STRUCTURES:
        assert load_trials(tmp_path / "one", s) == load_trials(tmp_path / "two", s)
